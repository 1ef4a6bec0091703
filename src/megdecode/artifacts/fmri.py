"""One subject's fMRI single-trial responses, ``{R}/fmri/subjects/sub-{subject}/`` (fMRI contract).

Written by the source of an fMRI study (the simulated 7T study: rule ``simulate_fmri``; the Natural Scenes
Dataset reader: rule ``nsd_subject``) and read by the fMRI decoders (ridge, MLP).
Nothing else opens these files.

Files (:data:`FILES`):

- ``betas.npy``: float32 (n_trials, n_voxels), one single-trial response per trial and voxel, in the source's
  units (NSD: percent signal change, int16 / 300; simulated: the same scale). Not z-scored: the decoders
  z-score each voxel per session with that session's non-test trials (:func:`zscore_per_session`).
- ``trials.tsv``: row i describes ``betas[i]`` (:data:`TRIAL_COLUMNS`): ``subject``; ``session`` (label, str);
  ``repetition`` (int >= 1: the how-many-th presentation of this image to this subject); ``image_id``
  (a row of the study's stimuli table and latents index); ``concept`` (str; NSD: the image id);
  ``split`` (:data:`FMRI_SPLITS`: ``train``, ``val`` or ``test``). Every repetition of an image shares its
  split; no test image and no test concept among train/val rows (checked on read).
  :func:`assign_validation` moves a seeded fraction of training images (all their repetitions) to ``val``.
- ``voxels.tsv``: row j describes ``betas[:, j]``: ``x``, ``y``, ``z`` (int voxel coordinates in the source's
  volume) and optionally ``roi`` (str label, e.g. ``V1``, ``nsdgeneral``).
- ``info.json``: ``source`` (``simulated`` or ``nsd``; it names the rule to rerun in errors) and provenance.

Test sets of the decoders (as the MEG study's): ``test_small`` is every test image once, its repetitions
averaged (:func:`repetition_groups`); ``test_large`` is every test trial, single trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode import io
from megdecode.artifacts.splits import TEST_SMALL, TRAIN, VAL, LeakageError, check_no_leakage

BETAS, TRIALS, VOXELS, INFO = "betas.npy", "trials.tsv", "voxels.tsv", "info.json"
FILES = {"betas": BETAS, "trials": TRIALS, "voxels": VOXELS, "info": INFO}
TEST = "test"
FMRI_SPLITS = (TRAIN, VAL, TEST)
TRIAL_COLUMNS = ["subject", "session", "repetition", "image_id", "concept", "split"]
VOXEL_COLUMNS = ["x", "y", "z"]
#: The rule that writes a subject's files, by ``info.json``'s ``source``.
PRODUCER_RULE = {"simulated": "simulate_fmri", "nsd": "nsd_subject"}


@dataclass(frozen=True)
class FmriSubject:
    """One subject's single-trial fMRI responses, trial table and voxel table (see the module docstring)."""

    name: str
    betas: np.ndarray  # float32 (n_trials, n_voxels)
    trials: pd.DataFrame  # TRIAL_COLUMNS, row i <-> betas[i]
    coords: np.ndarray  # int (n_voxels, 3)
    roi: np.ndarray | None = None  # (n_voxels,) str, optional
    info: Mapping[str, Any] = field(default_factory=dict)
    path: Path = Path("<memory>")

    def __post_init__(self) -> None:
        _check(self.betas, self.trials, self.coords, self.roi, self.path, self.info.get("source"))

    @property
    def n_voxels(self) -> int:
        return int(self.betas.shape[1])


def subject_files(directory: str) -> dict[str, str]:
    """``{betas, trials, voxels, info}`` paths of a subject folder (a pattern may keep ``{subject}``)."""
    return {key: f"{directory}/{name}" for key, name in FILES.items()}


def _rerun(source: Any) -> str:
    rule = PRODUCER_RULE.get(str(source), "that writes it (simulate_fmri or nsd_subject)")
    return f"rerun the rule {rule} for this subject"


def _check(
    betas: np.ndarray,
    trials: pd.DataFrame,
    coords: np.ndarray,
    roi: np.ndarray | None,
    where: Path,
    source: Any,
) -> None:
    fix = _rerun(source)
    if betas.ndim != 2 or betas.dtype != np.float32:
        raise ValueError(
            f"{where / BETAS}: expected float32 (n_trials, n_voxels), got {betas.dtype} {betas.shape}; {fix}"
        )
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"{where / TRIALS} lacks columns {missing} (need {TRIAL_COLUMNS}); {fix}")
    if betas.shape[0] != len(trials):
        raise ValueError(
            f"{where / BETAS} has {betas.shape[0]} trials but {where / TRIALS} has {len(trials)} rows; {fix}"
        )
    if coords.ndim != 2 or coords.shape[1] != 3 or coords.shape[0] != betas.shape[1]:
        raise ValueError(
            f"{where / VOXELS}: {coords.shape[0] if coords.ndim == 2 else coords.shape} voxel rows for "
            f"{betas.shape[1]} voxels in {where / BETAS} (need x, y, z per voxel); {fix}"
        )
    if roi is not None and len(roi) != coords.shape[0]:
        raise ValueError(f"{where / VOXELS}: {len(roi)} roi labels for {coords.shape[0]} voxels; {fix}")
    unknown = sorted(set(trials["split"].astype(str)) - set(FMRI_SPLITS))
    if unknown:
        raise ValueError(
            f"{where / TRIALS}: unknown split values {unknown} (allowed: {list(FMRI_SPLITS)}); {fix}"
        )
    rep = pd.to_numeric(trials["repetition"], errors="coerce")
    if rep.isna().any() or (rep < 1).any():
        raise ValueError(f"{where / TRIALS}: repetition must be an integer >= 1; {fix}")
    per_image = trials.groupby(trials["image_id"].astype(str))["split"].nunique()
    mixed = per_image.index[per_image > 1].tolist()
    if mixed:
        raise ValueError(f"{where / TRIALS}: images {mixed[:5]} have repetitions in different splits; {fix}")
    if not np.isfinite(betas).all():
        raise ValueError(f"{where / BETAS} has non-finite values; {fix}")
    as_meg = trials.assign(split=trials["split"].astype(str).replace({TEST: TEST_SMALL}))
    try:
        check_no_leakage(as_meg, where=str(where / TRIALS))
    except LeakageError as err:
        raise LeakageError(f"{err}; {fix}") from None


def write_fmri_subject(directory: Path | str, subject: FmriSubject) -> None:
    """Write the four files of ``subject`` (each atomically; ``betas.npy`` last, so it marks completion)."""
    directory = Path(directory)
    trials = subject.trials[TRIAL_COLUMNS].copy()
    trials["repetition"] = trials["repetition"].astype(int)
    voxels = pd.DataFrame(np.asarray(subject.coords, dtype=np.int64), columns=VOXEL_COLUMNS)
    if subject.roi is not None:
        voxels["roi"] = np.asarray(subject.roi).astype(str)
    io.write_tsv(trials, directory / TRIALS)
    io.write_tsv(voxels, directory / VOXELS)
    io.write_json(dict(subject.info), directory / INFO)
    with io.atomic_output(directory / BETAS) as tmp:
        np.save(tmp, np.ascontiguousarray(subject.betas, dtype=np.float32), allow_pickle=False)


def read_fmri_subject(directory: Path | str, mmap: bool = False) -> FmriSubject:
    """Read and check a subject folder; an inconsistent or missing file is named with the rule to rerun."""
    directory = Path(directory)
    info_path = directory / INFO
    info = io.read_json(info_path) if info_path.is_file() else {}
    for name in (BETAS, TRIALS, VOXELS, INFO):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} not found; {_rerun(info.get('source'))}")
    betas = io.load_npy(directory / BETAS, mmap=mmap)
    trials = io.read_tsv(
        directory / TRIALS,
        dtype={"subject": str, "session": str, "image_id": str, "concept": str, "split": str},
    )
    voxels = io.read_tsv(directory / VOXELS, dtype={"roi": str})
    missing = [c for c in VOXEL_COLUMNS if c not in voxels.columns]
    if missing:
        raise ValueError(f"{directory / VOXELS} lacks columns {missing}; {_rerun(info.get('source'))}")
    coords = voxels[VOXEL_COLUMNS].to_numpy()
    if not np.issubdtype(coords.dtype, np.integer):
        raise ValueError(f"{directory / VOXELS}: x, y, z must be integers; {_rerun(info.get('source'))}")
    roi = voxels["roi"].astype(str).to_numpy() if "roi" in voxels else None
    name = str(trials["subject"].iloc[0]) if len(trials) else directory.name.removeprefix("sub-")
    return FmriSubject(name, betas, trials, coords.astype(np.int64), roi, info, directory)


def assign_validation(trials: pd.DataFrame, fraction: float, rng: np.random.Generator) -> pd.DataFrame:
    """Move a random ``fraction`` of the training *images* (all their repetitions) to ``val``."""
    out = trials.copy()
    train_ids = np.sort(out.loc[out["split"] == TRAIN, "image_id"].astype(str).unique())
    n_val = int(round(fraction * len(train_ids)))
    if len(train_ids) and not 0 < n_val < len(train_ids):
        raise ValueError(
            f"validation fraction {fraction} leaves no train or no val image of {len(train_ids)}"
        )
    val_ids = set(rng.choice(train_ids, size=n_val, replace=False).tolist()) if n_val else set()
    out.loc[out["image_id"].astype(str).isin(val_ids), "split"] = VAL
    return out


def zscore_per_session(betas: np.ndarray, trials: pd.DataFrame, eps: float = 1e-6) -> np.ndarray:
    """Z-score each voxel within each session, with mean/std of that session's non-test trials only.

    A session without non-test trials has no statistics to fit: an error (test images never inform scaling).
    """
    out = np.empty(betas.shape, dtype=np.float32)
    session = trials["session"].astype(str).to_numpy()
    fit = trials["split"].astype(str).to_numpy() != TEST
    for label in np.unique(session):
        rows = session == label
        fit_rows = rows & fit
        if fit_rows.sum() < 2:
            raise ValueError(f"session {label}: fewer than 2 non-test trials to fit the per-voxel z-scoring")
        ref = np.asarray(betas[fit_rows], dtype=np.float64)
        mean, std = ref.mean(axis=0), ref.std(axis=0)
        out[rows] = ((np.asarray(betas[rows], dtype=np.float64) - mean) / np.maximum(std, eps)).astype(
            np.float32
        )
    return out


def repetition_groups(trials: pd.DataFrame) -> dict[str, np.ndarray]:
    """Positional rows of the test trials per image, images sorted (``test_small`` averages each group)."""
    split = trials["split"].astype(str).to_numpy()
    ids = trials["image_id"].astype(str).to_numpy()
    return {
        image: np.flatnonzero((split == TEST) & (ids == image)) for image in np.unique(ids[split == TEST])
    }
