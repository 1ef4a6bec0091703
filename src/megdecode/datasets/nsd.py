"""The Natural Scenes Dataset (NSD; Allen et al. 2022, 7T fMRI): paths, design, betas, ROI mask, stimuli.

Written against NSD's documented layout; ``config/nsd.yaml`` tags every value [V] (verified in NSD's data
manual or NSD's own code, source in a comment) or [S] (our choice). Facts this module relies on:

- ``nsddata/experiments/nsd/nsd_expdesign.mat`` [V]: ``masterordering`` (30,000 trials, 1-based indices into
  the subject's 10,000 images, in presentation order: session ``s`` holds trials ``750 (s-1) + 1 .. 750 s``),
  ``subjectim`` (8 x 10,000, 1-based indices into the 73,000 stimuli), ``sharedix`` (the 1,000 images shown
  to every subject, 1-based 73k indices; they are the first 1,000 of each subject's 10,000).
- Single-trial betas per session [V]:
  ``nsddata_betas/ppdata/subjAA/<space>/<version>/betas_sessionNN.{hdf5,nii.gz}``, int16 = percent signal
  change x 300 (divide by 300). NIfTI: (X, Y, Z, 750). HDF5: dataset ``betas``, MATLAB size X x Y x Z x 750,
  which h5py (row-major) shows as (750, Z, Y, X); both hold the same LPI volume (NSD's export code writes
  the HDF5 brick with a transform equal to the NIfTI one).
- ROI ``nsddata/ppdata/subjAA/<space>/roi/nsdgeneral.nii.gz`` [V]: -1 outside cortex, 0 cortex not in the ROI,
  1 in ``nsdgeneral`` (posterior cortex responsive to the NSD images). Voxels with a positive label are kept.
- Stimuli ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5`` [V]: dataset ``imgBrick``, uint8, MATLAB size
  3 x 425 x 425 x 73000, i.e. h5py (73000, 425, 425, 3); image ``k`` (1-based) is ``imgBrick[k - 1]``.

What :func:`load_subject` returns is in percent signal change (int16 / 300), float32, ROI voxels only. It does
*not* z-score: the fMRI decoders z-score each voxel per session with that session's non-test trials
(``megdecode.artifacts.fmri.zscore_per_session``); doing it here too would fit scaling twice.

Image ids follow NSD's own file naming (``shared0001_nsd02951.png``): ``nsd`` + the 1-based 73k index on
five digits. NSD has no concepts: an image's concept is its own id, so an image-level split is also a
concept-level one. Test split: the shared images (``sharedix``), as in the field (Scotti et al. 2023,
Ozcelik & VanRullen 2023) [S]; validation: a seeded fraction of each subject's other images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.seeds import derive_rng

log = logging.getLogger(__name__)

#: Folder names of NSD's top level and the file names the reader opens [V].
DESIGN_RELPATH = Path("nsddata/experiments/nsd/nsd_expdesign.mat")
STIMULI_RELPATH = Path("nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")
DESIGN_FIELDS = ("masterordering", "subjectim", "sharedix")
BETAS_DATASET = "betas"
STIMULI_DATASET = "imgBrick"
BETAS_FORMATS = ("hdf5", "nii.gz")
#: Sessions completed per subject (NSD Data Manual, Technical notes): 1, 2, 5 and 7 have all 40.
SESSIONS_COMPLETED = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}
AWS_BUCKET = "s3://natural-scenes-dataset"
#: ``nsd.sessions: first37``: the sessions MindEye (Scotti et al. 2023) and brain-diffuser (Ozcelik &
#: VanRullen 2023) train and test on (brain-diffuser's data/prepare_nsddata.py reads 37 x 750 trials
#: [V]); their test set is the shared images shown in those sessions, each averaged over its repetitions there
#: (982 images for their subjects, MindEye's src/Retrievals.py: num_val = 982 [V]).
FIRST_37 = tuple(f"{s:02d}" for s in range(1, 38))
SESSION_CHOICES = ("study", "first37")
TRIAL_COLUMNS = ["subject", "session", "trial", "repetition", "nsd_id", "image_id", "concept", "split"]
TEST, TRAIN, VAL = "test", "train", "val"


class NsdDataError(ValueError):
    """NSD files do not match the documented layout or the config; the message names the file and the fix."""


@dataclass(frozen=True)
class NsdSettings:
    """The ``nsd`` config section (defaults in ``src/megdecode/schemas/nsd.schema.yaml``)."""

    root: str | None
    space: str
    betas_version: str
    betas_format: str
    roi: str
    betas_scale: float
    trials_per_session: int
    images_per_subject: int
    n_stimuli: int
    n_shared: int
    image_size: int
    val_fraction: float
    sessions: str = "study"


def configured_sessions(section: Mapping[str, Any], study_sessions: Sequence[str]) -> list[str]:
    """The NSD sessions a study reads: ``study.sessions``, or with ``nsd.sessions: first37`` the first 37 (the
    split of MindEye and brain-diffuser: :data:`FIRST_37`)."""
    choice = section.get("sessions", "study")
    if choice not in SESSION_CHOICES:
        raise NsdDataError(f"nsd.sessions {choice!r}: use one of {list(SESSION_CHOICES)}")
    return list(FIRST_37) if choice == "first37" else [str(s) for s in study_sessions]


def subject_number(subject: str) -> int:
    """NSD subject number of a config label (``"01"`` or ``"1"`` -> 1); subjects are 1..8 [V]."""
    label = str(subject).removeprefix("subj")
    if not label.isdigit() or not 1 <= int(label) <= len(SESSIONS_COMPLETED):
        raise NsdDataError(
            f"subject label {subject!r} is not an NSD subject: use '01' .. '08' in study.subjects "
            "(NSD's subj01 .. subj08)"
        )
    return int(label)


def session_number(session: str) -> int:
    """NSD session number of a config label (``"01"`` -> 1)."""
    if not str(session).isdigit() or int(session) < 1:
        raise NsdDataError(
            f"session label {session!r} is not an NSD session: use '01' .. '40' in study.sessions"
        )
    return int(session)


def image_id(nsd_id: int) -> str:
    """Our image id of a 1-based 73k index, as NSD names its image files (``nsd02951``)."""
    return f"nsd{int(nsd_id):05d}"


@dataclass(frozen=True)
class NsdLayout:
    """Every path of an NSD copy, in one place (as ``BIDSPath`` is for BIDS)."""

    root: Path
    space: str = "func1pt8mm"
    betas_version: str = "betas_fithrf_GLMdenoise_RR"
    betas_format: str = "hdf5"
    roi: str = "nsdgeneral"

    def __post_init__(self) -> None:
        if self.betas_format not in BETAS_FORMATS:
            raise NsdDataError(f"nsd.betas_format {self.betas_format!r}: use one of {list(BETAS_FORMATS)}")

    @classmethod
    def from_settings(cls, settings: NsdSettings, root: Path | str | None = None) -> NsdLayout:
        where = root if root is not None else settings.root
        if where is None:
            raise NsdDataError("nsd.root is not set: point it at your NSD copy (the folder holding nsddata/)")
        return cls(Path(where), settings.space, settings.betas_version, settings.betas_format, settings.roi)

    @staticmethod
    def subject_folder(subject: str) -> str:
        return f"subj{subject_number(subject):02d}"

    def design(self) -> Path:
        return self.root / DESIGN_RELPATH

    def stimuli(self) -> Path:
        return self.root / STIMULI_RELPATH

    def betas_dir(self, subject: str) -> Path:
        return (
            self.root
            / "nsddata_betas/ppdata"
            / self.subject_folder(subject)
            / self.space
            / self.betas_version
        )

    def betas(self, subject: str, session: str) -> Path:
        name = f"betas_session{session_number(session):02d}.{self.betas_format}"
        return self.betas_dir(subject) / name

    def roi_mask(self, subject: str) -> Path:
        return (
            self.root
            / "nsddata/ppdata"
            / self.subject_folder(subject)
            / self.space
            / "roi"
            / f"{self.roi}.nii.gz"
        )

    def subject_inputs(self, subject: str, sessions: Sequence[str]) -> list[Path]:
        """The files one subject's reader opens: design, ROI mask, one betas file per session."""
        return [self.design(), self.roi_mask(subject), *(self.betas(subject, s) for s in sessions)]

    def download_hint(self, path: Path) -> str:
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            return f"check {path}"
        return f"download it (aws s3 cp {AWS_BUCKET}/{rel} {path})"


# --- design file ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NsdDesign:
    """``nsd_expdesign.mat``: 1-based indices as NSD stores them (see the module docstring)."""

    masterordering: np.ndarray  # (n_trials,) int, 1-based into a subject's images
    subjectim: np.ndarray  # (n_subjects, n_images) int, 1-based into the stimuli
    sharedix: np.ndarray  # (n_shared,) int, 1-based into the stimuli
    path: Path
    trials_per_session: int

    @property
    def n_sessions(self) -> int:
        return len(self.masterordering) // self.trials_per_session


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    """The design fields of a MATLAB file; v7.3 files (HDF5) through h5py, transposed to MATLAB's order."""
    import scipy.io

    try:
        raw = scipy.io.loadmat(path, variable_names=list(DESIGN_FIELDS))
        return {k: np.asarray(v) for k, v in raw.items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        import h5py

        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k]).T for k in DESIGN_FIELDS if k in f}
    except (ValueError, OSError, TypeError) as err:
        import h5py

        if h5py.is_hdf5(path):  # an HDF5 file without MATLAB's v7.3 header
            with h5py.File(path, "r") as f:
                return {k: np.asarray(f[k]).T for k in DESIGN_FIELDS if k in f}
        raise NsdDataError(
            f"{path} is not a readable MATLAB file ({err}); re-download nsd_expdesign.mat from NSD"
        ) from err


def _as_index(values: np.ndarray, path: Path, field: str, upper: int, setting: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0 or not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
        raise NsdDataError(
            f"{path}: '{field}' must hold whole numbers (1-based indices); re-download the file"
        )
    array = array.astype(np.int64)
    if array.min() < 1 or array.max() > upper:
        raise NsdDataError(
            f"{path}: '{field}' holds indices {array.min()}..{array.max()}, outside 1..{upper} "
            f"(nsd.{setting}); NSD indices are 1-based: use NSD's own file, or fix nsd.{setting}"
        )
    return array


def read_design(path: Path | str, settings: NsdSettings) -> NsdDesign:
    """Read and check ``nsd_expdesign.mat`` against the configured counts."""
    path = Path(path)
    if not path.is_file():
        raise NsdDataError(
            f"{path} not found: the NSD design file; download it "
            f"(aws s3 cp {AWS_BUCKET}/{DESIGN_RELPATH.as_posix()} {path}) or fix nsd.root"
        )
    fields = _load_mat(path)
    missing = [k for k in DESIGN_FIELDS if k not in fields]
    if missing:
        raise NsdDataError(
            f"{path} lacks {missing} (has {sorted(fields)}); not NSD's nsd_expdesign.mat: re-download it"
        )
    subjectim = np.asarray(fields["subjectim"])
    if subjectim.ndim != 2 or subjectim.shape[1] != settings.images_per_subject:
        raise NsdDataError(
            f"{path}: 'subjectim' is {subjectim.shape}, expected (subjects, {settings.images_per_subject}) "
            "(nsd.images_per_subject); use NSD's own design file or fix the setting"
        )
    subjectim = _as_index(subjectim, path, "subjectim", settings.n_stimuli, "n_stimuli")
    ordering = _as_index(
        np.asarray(fields["masterordering"]).ravel(),
        path,
        "masterordering",
        settings.images_per_subject,
        "images_per_subject",
    )
    if len(ordering) % settings.trials_per_session:
        raise NsdDataError(
            f"{path}: 'masterordering' has {len(ordering)} trials, not a multiple of "
            f"{settings.trials_per_session} trials per session (nsd.trials_per_session)"
        )
    shared = _as_index(
        np.asarray(fields["sharedix"]).ravel(), path, "sharedix", settings.n_stimuli, "n_stimuli"
    )
    if len(shared) != settings.n_shared or len(np.unique(shared)) != len(shared):
        raise NsdDataError(
            f"{path}: 'sharedix' holds {len(shared)} ({len(np.unique(shared))} distinct) images, expected "
            f"{settings.n_shared} distinct (nsd.n_shared)"
        )
    return NsdDesign(ordering, subjectim, shared, path, settings.trials_per_session)


def trial_table(
    design: NsdDesign,
    subject: str,
    sessions: Sequence[str],
    val_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """One row per trial of the configured sessions, in the order of the betas files (:data:`TRIAL_COLUMNS`).

    ``repetition`` counts the presentations of the image over the subject's whole design (1 = first time);
    ``split`` is ``test`` for the shared images, else ``train``, or ``val`` for a seeded fraction of the
    training images (all repetitions of an image share its split).
    """
    number = subject_number(subject)
    if number > design.subjectim.shape[0]:
        raise NsdDataError(f"{design.path}: 'subjectim' has no row for subject {subject}")
    tps = design.trials_per_session
    images = design.subjectim[number - 1, design.masterordering - 1]  # 1-based 73k ids, every trial
    order = pd.Series(images)
    repetition = order.groupby(order).cumcount().to_numpy() + 1
    rows = []
    for session in sessions:
        s = session_number(session)
        if s > design.n_sessions:
            raise NsdDataError(
                f"study.sessions has session {session} but {design.path} describes {design.n_sessions} "
                f"sessions of {tps} trials; remove it from study.sessions"
            )
        done = SESSIONS_COMPLETED.get(number)  # checked against NSD's own design (40 planned sessions)
        if done is not None and design.n_sessions == 40 and s > done:
            raise NsdDataError(
                f"subject {subject} completed {done} NSD sessions (NSD data manual, Technical notes); "
                f"session {session} does not exist: remove it from study.sessions"
            )
        block = slice((s - 1) * tps, s * tps)
        nsd_ids = images[block]
        rows.append(
            pd.DataFrame(
                {
                    "subject": subject,
                    "session": f"{s:02d}",
                    "trial": np.arange(1, tps + 1),
                    "repetition": repetition[block],
                    "nsd_id": nsd_ids,
                }
            )
        )
    table = pd.concat(rows, ignore_index=True)
    table["image_id"] = [image_id(k) for k in table["nsd_id"]]
    table["concept"] = table["image_id"]
    table["split"] = np.where(np.isin(table["nsd_id"], design.sharedix), TEST, TRAIN)
    return assign_validation_images(table, val_fraction, seed, subject)


def assign_validation_images(table: pd.DataFrame, fraction: float, seed: int, subject: str) -> pd.DataFrame:
    """Move a seeded ``fraction`` of the training images (all their repetitions) to ``val``; test images stay.

    Uses the fMRI contract's :func:`~megdecode.artifacts.fmri.assign_validation` with the RNG
    ``derive_rng(seed, "nsd", "val", subject)``.
    """
    from megdecode.artifacts.fmri import assign_validation

    if fraction == 0:
        return table.copy()
    try:
        return assign_validation(table, fraction, derive_rng(seed, "nsd", "val", subject))
    except ValueError as err:
        raise NsdDataError(
            f"subject {subject}: {err}; configure more sessions in study.sessions or another nsd.val_fraction"
        ) from None


# --- volumes ----------------------------------------------------------------------------------------------


def read_roi_mask(path: Path | str) -> np.ndarray:
    """Boolean (X, Y, Z) volume of the voxels with a positive label (nsdgeneral: value 1)."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise NsdDataError(
            f"{path} not found: the subject's ROI mask; download it or fix nsd.roi / nsd.space"
        )
    try:
        data = np.asanyarray(nib.load(path).dataobj)
    except Exception as err:  # nibabel raises several types for a broken file
        raise NsdDataError(f"{path} is not a readable NIfTI volume ({err}); re-download it") from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise NsdDataError(f"{path} is a {data.ndim}-D image {data.shape}; an ROI mask is one 3-D volume")
    mask = data > 0
    if not mask.any():
        raise NsdDataError(
            f"{path} labels no voxel (values {np.unique(data)[:5]}); expected 1 inside the ROI"
        )
    return mask


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def read_session_betas(
    path: Path | str,
    mask: np.ndarray,
    design: NsdDesign,
    scale: float,
    mask_path: Path | str = "the ROI mask",
) -> np.ndarray:
    """The ROI voxels of one session's betas, float32 (n_trials, n_voxels), in percent signal change.

    Voxels are in the order of ``np.argwhere(mask)`` (x, then y, then z). The file must hold int16 values
    (NSD's format), the mask's volume and exactly the design's trials per session; all three are checked
    from the header before any value is read.
    """
    path = Path(path)
    if not path.is_file():
        raise NsdDataError(f"{path} not found: a configured session has no betas file")
    hdf5 = path.name.endswith(".hdf5")
    with _open_betas(path, hdf5) as (data, shape, dtype):
        volume, n_trials = tuple(shape[:3]), shape[3]
        if volume != mask.shape:
            raise NsdDataError(
                f"{mask_path} is a {mask.shape} volume but the betas {path} are {volume} (x, y, z): use the "
                "mask and the betas of the same subject and the same space (nsd.space)"
            )
        if n_trials != design.trials_per_session:
            raise NsdDataError(
                f"{path} holds {n_trials} trials but the design file {design.path} has "
                f"{design.trials_per_session} per session: replace it with NSD's betas file of this session "
                "(or fix nsd.trials_per_session)"
            )
        if dtype != np.int16:
            raise NsdDataError(
                f"{path} holds {dtype} values; NSD's betas are int16 (percent signal change x {scale:g}): "
                "use NSD's file, not a converted copy"
            )
        sx, sy, sz = _bounding_box(mask)
        if hdf5:  # (trials, z, y, x) -> (trials, x, y, z)
            block = np.asarray(data[:, sz, sy, sx]).transpose(0, 3, 2, 1)
        else:  # (x, y, z, trials) -> (trials, x, y, z); dataobj keeps the stored int16
            block = np.moveaxis(np.asanyarray(data[sx, sy, sz, :]), 3, 0)
    local = np.argwhere(mask[sx, sy, sz])
    values = block[:, local[:, 0], local[:, 1], local[:, 2]]
    return (values.astype(np.float32) / np.float32(scale)).astype(np.float32)


@contextmanager
def _open_betas(path: Path, hdf5: bool) -> Iterator[tuple[Any, tuple[int, ...], np.dtype]]:
    """(array-like, (x, y, z, trials), dtype) of a betas file, read lazily."""
    if hdf5:
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise NsdDataError(f"{path} is not a readable HDF5 file ({err}); re-download it") from err
        with f:
            if BETAS_DATASET not in f:
                raise NsdDataError(f"{path} has no '{BETAS_DATASET}' dataset (has {list(f)}); re-download it")
            ds = f[BETAS_DATASET]
            if ds.ndim != 4:
                raise NsdDataError(f"{path}: '{BETAS_DATASET}' is {ds.shape}; NSD's is (trials, z, y, x)")
            n_trials, nz, ny, nx = ds.shape
            yield ds, (nx, ny, nz, n_trials), ds.dtype
        return
    import nibabel as nib

    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises several types for a broken file
        raise NsdDataError(f"{path} is not a readable NIfTI file ({err}); re-download it") from err
    shape = tuple(int(n) for n in img.shape)
    if len(shape) != 4:
        raise NsdDataError(f"{path} is {shape}; NSD's betas are (x, y, z, trials)")
    yield img.dataobj, shape, img.get_data_dtype()


# --- stimuli ----------------------------------------------------------------------------------------------


class NsdStimuli:
    """Lazy access to ``nsd_stimuli.hdf5``: ``stimuli[nsd_id]`` is one (H, W, 3) uint8 image (1-based id)."""

    def __init__(self, path: Path | str, settings: NsdSettings) -> None:
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise NsdDataError(
                f"{self.path} not found: NSD's stimuli; download it "
                f"(aws s3 cp {AWS_BUCKET}/{STIMULI_RELPATH.as_posix()} {self.path}) or fix nsd.root"
            )
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise NsdDataError(f"{self.path} is not a readable HDF5 file ({err}); re-download it") from err
        if STIMULI_DATASET not in self._file:
            self.close()
            raise NsdDataError(f"{self.path} has no '{STIMULI_DATASET}' dataset; re-download it")
        self._data = self._file[STIMULI_DATASET]
        size = settings.image_size
        expected = (settings.n_stimuli, size, size, 3)
        if self._data.shape != expected or self._data.dtype != np.uint8:
            shape, dtype = self._data.shape, self._data.dtype
            self.close()
            raise NsdDataError(
                f"{self.path}: '{STIMULI_DATASET}' is {dtype} {shape}, expected uint8 {expected} "
                "(nsd.n_stimuli, nsd.image_size); use NSD's file or fix the settings"
            )

    def __len__(self) -> int:
        return int(self._data.shape[0])

    def __getitem__(self, nsd_id: int) -> np.ndarray:
        k = int(nsd_id)
        if not 1 <= k <= len(self):
            raise IndexError(f"NSD image {k} outside 1..{len(self)} ({self.path})")
        return np.asarray(self._data[k - 1])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> NsdStimuli:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def open_stimuli(path: Path | str, settings: NsdSettings) -> Iterator[NsdStimuli]:
    stimuli = NsdStimuli(path, settings)
    try:
        yield stimuli
    finally:
        stimuli.close()


def export_images(
    path: Path | str, nsd_ids: Sequence[int], dest: Path | str, settings: NsdSettings
) -> list[str]:
    """Write the given stimuli as PNG files ``<image_id>.png`` under ``dest``; returns the file names."""
    from PIL import Image

    from megdecode.io import atomic_output

    dest = Path(dest)
    names = []
    with open_stimuli(path, settings) as stimuli:
        for k in sorted({int(i) for i in nsd_ids}):
            name = f"{image_id(k)}.png"
            with atomic_output(dest / name) as tmp:
                Image.fromarray(stimuli[k]).save(tmp, format="PNG")
            names.append(name)
    return names


def stimuli_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per image of ``trials``, in the stimulus-table format of ``megdecode.artifacts.stimuli``."""
    first = trials.drop_duplicates("image_id").sort_values("nsd_id")
    is_test = first["split"].eq(TEST).to_numpy()
    return pd.DataFrame(
        {
            "image_id": first["image_id"].to_numpy(),
            "file": [f"{i}.png" for i in first["image_id"]],
            "concept": first["image_id"].to_numpy(),
            "exemplar": 1,
            "role": np.where(is_test, "test", "exp"),
            "concept_split": np.where(is_test, "test", "train"),
            "nsd_id": first["nsd_id"].to_numpy(),
        }
    )


# --- one subject ------------------------------------------------------------------------------------------


def check_inputs(layout: NsdLayout, subject: str, sessions: Sequence[str]) -> None:
    """Fail before reading anything if a configured file is missing; list every missing one."""
    missing = [p for p in layout.subject_inputs(subject, sessions) if not p.is_file()]
    if missing:
        lines = "\n".join(f"  {p}: {layout.download_hint(p)}" for p in missing)
        raise NsdDataError(
            f"NSD subject {subject}: {len(missing)} configured file(s) missing (or remove the sessions from "
            f"study.sessions):\n{lines}"
        )


def read_subject(
    layout: NsdLayout,
    settings: NsdSettings,
    subject: str,
    sessions: Sequence[str],
    seed: int,
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Betas (float32, trials x ROI voxels, % signal change), trial table, voxel coordinates (x, y, z)."""
    check_inputs(layout, subject, sessions)
    design = read_design(layout.design(), settings)
    trials = trial_table(design, subject, sessions, settings.val_fraction, seed)
    mask_path = layout.roi_mask(subject)
    mask = read_roi_mask(mask_path)
    tps = design.trials_per_session
    betas = np.empty((len(sessions) * tps, int(mask.sum())), dtype=np.float32)  # filled session by session
    for k, session in enumerate(sessions):
        path = layout.betas(subject, session)
        betas[k * tps : (k + 1) * tps] = read_session_betas(
            path, mask, design, settings.betas_scale, mask_path
        )
        log.info("subject %s session %s: %d trials x %d voxels", subject, session, tps, betas.shape[1])
    coords = np.argwhere(mask).astype(np.int64)
    return betas, trials, coords


def load_subject(
    layout: NsdLayout,
    settings: NsdSettings,
    subject: str,
    sessions: Sequence[str],
    seed: int,
):  # -> megdecode.artifacts.fmri.FmriSubject
    """One subject as the fMRI contract's ``FmriSubject`` (ROI voxels, % signal change, not z-scored)."""
    from megdecode.artifacts.fmri import FmriSubject

    betas, trials, coords = read_subject(layout, settings, subject, sessions, seed)
    info = {
        "source": "nsd",
        "space": layout.space,
        "betas_version": layout.betas_version,
        "betas_format": layout.betas_format,
        "roi": layout.roi,
        "units": f"percent signal change (int16 / {settings.betas_scale:g})",
        "sessions": [f"{session_number(s):02d}" for s in sessions],
        "n_test_images": int(trials.loc[trials["split"] == TEST, "image_id"].nunique()),
    }
    roi = np.full(len(coords), layout.roi, dtype=object)
    return FmriSubject(str(subject), betas, trials, coords, roi, info)


# --- workflow stages (rules/nsd.smk) ------------------------------------------------------------------------


def settings_from_config(section: Mapping[str, Any]) -> NsdSettings:
    """:class:`NsdSettings` of a validated ``nsd`` config slice."""
    from megdecode.config import dataclass_from_section

    return dataclass_from_section(NsdSettings, section, "nsd")


def write_study_stimuli(
    section: Mapping[str, Any],
    subjects: Sequence[str],
    sessions: Sequence[str],
    seed: int,
    table_path: Path | str,
    images_dir: Path | str,
) -> None:
    """Rule ``nsd_stimuli``: the stimuli table and one PNG per image the subjects saw in the sessions."""
    from megdecode.artifacts.stimuli import write_stimuli
    from megdecode.io import atomic_output

    reader = NsdReader(settings_from_config(section), subjects, sessions, seed)
    settings, layout = reader.settings, reader.layout
    table = reader.stimuli_table()
    with atomic_output(images_dir) as tmp:
        tmp.mkdir()
        export_images(layout.stimuli(), table["nsd_id"].tolist(), tmp, settings)
    log.info("%d images (%d shared test images)", len(table), int((table["role"] == "test").sum()))
    write_stimuli(table, table_path)


def write_study_subject(
    section: Mapping[str, Any], subject: str, sessions: Sequence[str], seed: int, out_dir: Path | str
) -> None:
    """Rule ``nsd_subject``: one subject's fMRI files (``megdecode.artifacts.fmri``) from NSD."""
    from megdecode.artifacts.fmri import write_fmri_subject

    settings = settings_from_config(section)
    layout = NsdLayout.from_settings(settings)
    write_fmri_subject(out_dir, load_subject(layout, settings, subject, sessions, seed))


# --- the dataset reader (megdecode.datasets.DatasetReader) --------------------------------------------------


@dataclass(frozen=True)
class NsdReader:
    """NSD at ``settings.root`` for the configured subjects and sessions (``seed``: the validation draw)."""

    settings: NsdSettings
    subjects: Sequence[str]
    sessions: Sequence[str]
    seed: int

    @property
    def layout(self) -> NsdLayout:
        return NsdLayout.from_settings(self.settings)

    def inventory(self) -> pd.DataFrame:
        """One row per (subject, session): its betas file and the subject's ROI mask (every one present)."""
        layout = self.layout
        for subject in self.subjects:
            check_inputs(layout, subject, self.sessions)
        rows = [
            {
                "subject": subject,
                "session": f"{session_number(session):02d}",
                "betas": str(layout.betas(subject, session)),
                "roi_mask": str(layout.roi_mask(subject)),
            }
            for subject in self.subjects
            for session in self.sessions
        ]
        return pd.DataFrame(rows, columns=["subject", "session", "betas", "roi_mask"])

    def trials(self, subject: str) -> pd.DataFrame:
        """The subject's trials in the order of its betas files (:data:`TRIAL_COLUMNS`, with ``split``)."""
        design = read_design(self.layout.design(), self.settings)
        return trial_table(design, subject, self.sessions, self.settings.val_fraction, self.seed)

    def stimuli_table(self) -> pd.DataFrame:
        design = read_design(self.layout.design(), self.settings)
        fraction = self.settings.val_fraction
        trials = [trial_table(design, s, self.sessions, fraction, self.seed) for s in self.subjects]
        return stimuli_table(pd.concat(trials, ignore_index=True))
