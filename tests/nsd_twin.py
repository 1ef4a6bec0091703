"""A layout twin of the Natural Scenes Dataset for tests: NSD's file structure, names and dtypes, tiny sizes.

``make_nsd_twin(root, NsdTwinSpec(...))`` writes, under ``root``:

- ``nsddata/experiments/nsd/nsd_expdesign.mat`` with NSD's structure: ``subjectim`` (8 x images), the first
  ``n_shared`` images of every subject being ``sharedix``; ``masterordering`` shows every image 3 times
  (MATLAB v5, or v7.3 = HDF5 with MATLAB's header when ``v73``);
- per subject ``nsddata/ppdata/subjAA/func1pt8mm/roi/nsdgeneral.nii.gz`` (-1 / 0 / 1, as NSD's) and per
  session ``nsddata_betas/ppdata/subjAA/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionNN.<fmt>``
  (int16 = value x 300; HDF5 dataset ``betas`` (trials, z, y, x), NIfTI (x, y, z, trials));
- ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5`` (``imgBrick``, uint8 (n, size, size, 3)).

``placeholders=True`` writes empty files instead of volumes and stimuli (enough for ``snakemake -n``) and can
use NSD's full-size counts (30,000 trials, 8 x 10,000 images, 1,000 shared) for the design file.
:func:`true_value` gives the percent signal change every twin betas file holds, so a test can check a read.

``planted=True`` writes a twin whose betas carry a code of the image shown (:func:`planted_code`: a fixed
random map per subject of the image's colour composition, the share of its pixels in each octant of RGB
space, plus a little noise), and whose images are coloured blocks (so that their colour compositions differ).
The trial-to-image mapping is computed here independently of the reader, trial by trial as NSD's own code
and brain-diffuser's do; ``planted_shift`` misaligns a subject's betas on purpose (trial t carries the code of
the image of trial t + shift): a negative control whose decoding must fall to chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from megdecode.datasets.nsd import DESIGN_RELPATH, STIMULI_RELPATH, NsdLayout, NsdSettings

REPETITIONS = 3
N_SUBJECTS = 8


@dataclass(frozen=True)
class NsdTwinSpec:
    subjects: tuple[str, ...] = ("01",)
    n_sessions: int = 2  # sessions in the design file (and betas files written per subject)
    trials_per_session: int = 12
    n_shared: int = 2
    volume: tuple[int, int, int] = (6, 7, 5)
    image_size: int = 8
    betas_format: str = "hdf5"
    placeholders: bool = False
    v73: bool = False
    seed: int = 0
    betas_sessions: tuple[str, ...] | None = None  # default: every design session
    overrides: dict[str, Any] = field(default_factory=dict)
    planted: bool = False  # betas carry a code of the image shown (see the module docstring)
    planted_shift: dict[str, int] = field(default_factory=dict)  # subject -> misalignment in trials
    planted_noise: float = 0.05  # SD of the noise added to the planted code (percent signal change)

    @property
    def n_trials(self) -> int:
        return self.n_sessions * self.trials_per_session

    @property
    def images_per_subject(self) -> int:
        if self.n_trials % REPETITIONS:
            raise ValueError("n_sessions x trials_per_session must be a multiple of 3 (each image 3 times)")
        return self.n_trials // REPETITIONS

    @property
    def n_stimuli(self) -> int:
        # as NSD: every subject's non-shared images are its own (8 x 9,000 + 1,000 = 73,000 at full size)
        return self.n_shared + N_SUBJECTS * (self.images_per_subject - self.n_shared)


FULL_SIZE = {"n_sessions": 40, "trials_per_session": 750, "n_shared": 1000}


def twin_settings(spec: NsdTwinSpec, root: Path | str, defaults: dict[str, Any]) -> NsdSettings:
    """The ``nsd`` section that reads this twin: schema defaults with the twin's counts."""
    values = {
        **defaults,
        "root": str(root),
        "trials_per_session": spec.trials_per_session,
        "images_per_subject": spec.images_per_subject,
        "n_stimuli": spec.n_stimuli,
        "n_shared": spec.n_shared,
        "image_size": spec.image_size,
        "betas_format": spec.betas_format,
        **spec.overrides,
    }
    return NsdSettings(**values)


def design_arrays(spec: NsdTwinSpec) -> dict[str, np.ndarray]:
    """NSD-structured design arrays (1-based, MATLAB shapes: row vectors and 8 x images)."""
    rng = np.random.default_rng(spec.seed)
    n_img, n_shared = spec.images_per_subject, spec.n_shared
    shared = rng.permutation(spec.n_stimuli)[:n_shared] + 1
    rest = np.setdiff1d(np.arange(1, spec.n_stimuli + 1), shared)
    rest = rng.permutation(rest)
    subjectim = np.zeros((N_SUBJECTS, n_img), dtype=np.int64)
    per = n_img - n_shared
    for p in range(N_SUBJECTS):
        subjectim[p, :n_shared] = shared
        subjectim[p, n_shared:] = rest[p * per : (p + 1) * per]
    ordering = rng.permutation(np.repeat(np.arange(1, n_img + 1), REPETITIONS))
    return {
        "masterordering": ordering[None, :].astype(np.float64),  # MATLAB stores doubles
        "subjectim": subjectim.astype(np.float64),
        "sharedix": np.sort(shared)[None, :].astype(np.float64),
    }


def write_design(path: Path, arrays: dict[str, np.ndarray], v73: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not v73:
        import scipy.io

        scipy.io.savemat(path, arrays)
        return
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=np.asarray(value).T)  # h5py sees MATLAB's column-major array reversed
    header = b"MATLAB 7.3 MAT-file, created by the megdecode NSD twin".ljust(116, b" ")
    with open(path, "r+b") as f:
        f.write(header + b"\x00" * 8 + b"\x00\x02" + b"IM")


def roi_volume(spec: NsdTwinSpec, subject: str) -> np.ndarray:
    """-1 outside 'cortex', 0 cortex, 1 in the ROI (a subject-specific, non-convex set)."""
    rng = np.random.default_rng([spec.seed, int(subject)])
    vol = np.full(spec.volume, -1, dtype=np.int16)
    vol[1:-1, 1:-1, :] = 0
    roi = rng.random(spec.volume) < 0.4
    roi[0] = False
    vol[roi] = 1
    return vol


def true_value(subject: str, session: int, shape: tuple[int, int, int], n_trials: int) -> np.ndarray:
    """(x, y, z, trials) percent signal change every twin betas file holds (multiples of 1/300)."""
    x, y, z, t = np.meshgrid(*(np.arange(n) for n in (*shape, n_trials)), indexing="ij")
    code = x * 7 + y * 11 + z * 13 + t * 3 + int(session) * 17 + int(subject) * 19
    return ((code % 601) - 300) / 300.0 * 2.0  # -2 .. +2 % signal change, exact in int16 / 300


def twin_images(spec: NsdTwinSpec) -> np.ndarray:
    """The twin's ``imgBrick``: coloured blocks for a planted twin, uniform noise otherwise."""
    if spec.planted:
        return block_images(spec.n_stimuli, spec.image_size, spec.seed + 1)
    rng = np.random.default_rng(spec.seed + 1)
    return rng.integers(0, 256, (spec.n_stimuli, spec.image_size, spec.image_size, 3), dtype=np.uint8)


def block_images(n: int, size: int, seed: int) -> np.ndarray:
    """(n, size, size, 3) uint8 images of 4 x 4 blocks of random colours."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, size // 4, axis=1), size // 4, axis=2)


def octant_shares(image: np.ndarray) -> np.ndarray:
    """(8,) the share of the image's pixels in each octant of RGB space (each channel below / from 128)."""
    bits = (np.asarray(image).reshape(-1, 3) >= 128).astype(int)
    index = bits[:, 0] * 4 + bits[:, 1] * 2 + bits[:, 2]
    return np.bincount(index, minlength=8) / len(index)


def trial_images(arrays: dict[str, np.ndarray], subject: str) -> list[int]:
    """The 1-based 73k id of the image of every trial of the design, in order, one trial at a time."""
    ordering = [int(v) for v in np.asarray(arrays["masterordering"]).ravel()]
    subjectim = np.asarray(arrays["subjectim"])
    row = int(subject) - 1
    return [int(subjectim[row, k - 1]) for k in ordering]


def planted_code(spec: NsdTwinSpec, subject: str, images: np.ndarray, nsd_id: int) -> np.ndarray:
    """(x, y, z) percent signal change a planted twin's betas carry for ``nsd_id`` (without the noise)."""
    rng = np.random.default_rng([spec.seed, int(subject), 7])
    weights = rng.standard_normal((int(np.prod(spec.volume)), 8))
    code = weights @ (octant_shares(images[nsd_id - 1]) - 1 / 8) * 4.0
    return np.clip(code, -30, 30).reshape(spec.volume)


def planted_values(spec: NsdTwinSpec, subject: str, session: int, images: np.ndarray) -> np.ndarray:
    """(x, y, z, trials) betas of one session of a planted twin (shifted for ``planted_shift``)."""
    shown = trial_images(design_arrays(spec), subject)
    shift = int(spec.planted_shift.get(subject, 0))
    rng = np.random.default_rng([spec.seed, int(subject), session, 11])
    out = np.empty((*spec.volume, spec.trials_per_session))
    for t in range(spec.trials_per_session):
        g = (session - 1) * spec.trials_per_session + t
        code = planted_code(spec, subject, images, shown[(g + shift) % len(shown)])
        out[..., t] = code + spec.planted_noise * rng.standard_normal(spec.volume)
    return out


def write_betas(path: Path, values: np.ndarray, fmt: str, n_trials_override: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.round(values * 300).astype(np.int16)
    if n_trials_override is not None:
        data = data[..., :n_trials_override]
    if fmt == "hdf5":
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("betas", data=data.transpose(3, 2, 1, 0), chunks=(data.shape[3], 1, 1, 1))
    else:
        import nibabel as nib

        img = nib.Nifti1Image(data, np.diag([1.8, 1.8, 1.8, 1.0]))
        img.set_data_dtype(np.int16)
        nib.save(img, path)


def write_nifti(path: Path, volume: np.ndarray) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, np.diag([1.8, 1.8, 1.8, 1.0])), path)


def make_nsd_twin(root: Path | str, spec: NsdTwinSpec) -> NsdLayout:
    root = Path(root)
    layout = NsdLayout(root, betas_format=spec.betas_format)
    write_design(root / DESIGN_RELPATH, design_arrays(spec), v73=spec.v73)
    sessions = spec.betas_sessions or tuple(f"{s:02d}" for s in range(1, spec.n_sessions + 1))
    stim = root / STIMULI_RELPATH
    stim.parent.mkdir(parents=True, exist_ok=True)
    images = None if spec.placeholders else twin_images(spec)
    for subject in spec.subjects:
        paths = [layout.roi_mask(subject), *(layout.betas(subject, s) for s in sessions)]
        if spec.placeholders:
            for p in paths:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
            continue
        write_nifti(layout.roi_mask(subject), roi_volume(spec, subject))
        for s in sessions:
            if spec.planted:
                values = planted_values(spec, subject, int(s), images)
            else:
                values = true_value(subject, int(s), spec.volume, spec.trials_per_session)
            write_betas(layout.betas(subject, s), values, spec.betas_format)
    if spec.placeholders:
        stim.touch()
    else:
        import h5py

        with h5py.File(stim, "w") as f:
            f.create_dataset("imgBrick", data=images)
    return layout
