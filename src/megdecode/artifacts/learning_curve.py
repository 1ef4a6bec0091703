"""The learning-curve experiment's per-job files (patterns in :class:`~megdecode.artifacts.paths.Layout`).

- scores ``{R}/learning_curve/{world}/sub-{subject}_seed-{seed}_n-{n_train}_scores.tsv``: one row per
  (decoder, backbone, scored set, item) with the item's retrieval scores (:data:`SCORE_COLUMNS`); the two
  ceilings (``oracle_image``, ``ceiling_fair``) have ``n_train`` 0 and no backbone (the same rows in every
  size's file: they train on nothing);
- trials ``..._trials.tsv``: one row per simulated trial with the variables that generated it;
- concept renders ``{R}/learning_curve/test_concept_renders.tsv`` (one per study): the low-level statistics
  (:data:`~megdecode.simulate.stimuli.LOW_LEVEL_FEATURES`) of fresh renders of each test concept, one row per
  render (``concept``, ``render``), from which the fair ceiling takes each concept's expected early response
  and its exemplar spread (:mod:`megdecode.learning_curve.oracle`).

The fMRI curve (``learning_curve.modalities`` with ``fmri``; :mod:`megdecode.learning_curve.fmri`) writes the
same two files under ``{R}/learning_curve/fmri/`` (scores with a ``modality`` column ``fMRI`` and world
``7T``; files without that column are MEG's), and per subject its voxels' noiseless code
``sub-{subject}_voxels.npz`` (:data:`VOXEL_ARRAYS`) beside their ground truth ``sub-{subject}_truth.json``.
The EEG curve (``eeg`` in ``learning_curve.modalities``; :mod:`megdecode.learning_curve.eeg`) writes them
under ``{R}/learning_curve/eeg/{world}/`` (modality ``EEG``; its trials also name each one's sequence
position and neighbours).
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode import io
from megdecode.artifacts.paths import Layout
from megdecode.simulate.stimuli import LOW_LEVEL_FEATURES

SCORE_COLUMNS = [
    "world",
    "subject",
    "seed",
    "n_train",
    "backbone",
    "decoder",
    "test_set",
    "image_id",
    "top1_acc",
    "top5_acc",
    "median_rank",
]
MODALITY = "modality"  # MEG, fMRI or EEG: written by the fMRI and EEG jobs only (MEG's files predate it)
MEG, FMRI, EEG = "MEG", "fMRI", "EEG"
ITEM_KEYS = [MODALITY, *SCORE_COLUMNS[:8]]  # what identifies one row
EXTRA_COLUMNS = ["epochs", "best_epoch"]  # the deep decoder's training length (empty for the others)
RENDER_COLUMNS = ["concept", "render", *LOW_LEVEL_FEATURES]
#: (images,) str; (images, voxels) standardised signal; (voxels,) gain; (voxels, components) noise loadings;
#: () the noise's independent variance (megdecode.simulate.fmri.NoiseModel)
VOXEL_ARRAYS = ("image_ids", "signal", "snr", "noise_loadings", "noise_white")


def write_scores(scores: pd.DataFrame, path: Path | str) -> None:
    columns = SCORE_COLUMNS + EXTRA_COLUMNS + ([MODALITY] if MODALITY in scores else [])
    io.write_tsv(scores.reindex(columns=columns), path)


def find_scores(results_dir: Path | str) -> list[Path]:
    """Every job's scores file of one run (the Layout's pattern with each wildcard matching anything)."""
    layout = Layout(results=str(results_dir), bids_root="", stimuli_images="")
    any_job = dict(world="*", subject="*", seed="*", n_train="*")  # world "*" also matches fmri/
    patterns = (layout.learning_curve_scores, layout.learning_curve_eeg_scores)
    return [Path(p) for p in sorted(f for pattern in patterns for f in glob.glob(pattern.format(**any_job)))]


def read_scores(path: Path | str) -> pd.DataFrame:
    """One job's scores, checked for the columns the summary needs."""
    table = io.read_tsv(path, dtype={"subject": str, "image_id": str, "backbone": str})
    missing = [c for c in SCORE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; rerun its learning_curve_job")
    table["backbone"] = table["backbone"].fillna("")
    if MODALITY not in table:
        table[MODALITY] = MEG
    return table


def write_trials(trials: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(trials, path)


def write_concept_renders(renders: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(renders.reindex(columns=RENDER_COLUMNS), path)


def read_concept_renders(path: Path | str) -> dict[str, np.ndarray]:
    """Per concept, its renders' statistics (n_renders, n_features) in render order."""
    table = io.read_tsv(path, dtype={"concept": str})
    missing = [c for c in RENDER_COLUMNS if c not in table.columns]
    if missing or table.empty:
        raise ValueError(
            f"{path}: expected rows with columns {RENDER_COLUMNS}; "
            "rerun its learning_curve_concept_renders job"
        )
    table = table.sort_values(["concept", "render"], kind="stable")
    features = RENDER_COLUMNS[2:]
    return {c: part[features].to_numpy(float) for c, part in table.groupby("concept", sort=True)}


def write_voxel_code(
    arrays: dict[str, np.ndarray], truth: dict, path: Path | str, truth_path: Path | str
) -> None:
    """One subject's voxel code (:data:`VOXEL_ARRAYS`) and the ground truth that drew it."""
    io.write_json(truth, truth_path)
    io.save_npz({k: arrays[k] for k in VOXEL_ARRAYS}, path)


def read_voxel_code(path: Path | str) -> dict[str, np.ndarray]:
    arrays = io.load_npz(path)
    missing = [k for k in VOXEL_ARRAYS if k not in arrays]
    shapes_ok = not missing and arrays["signal"].shape == (len(arrays["image_ids"]), len(arrays["snr"]))
    if missing or not shapes_ok:
        raise ValueError(
            f"{path}: expected arrays {list(VOXEL_ARRAYS)} with signal (images, voxels); rerun its "
            "learning_curve_fmri_voxels job"
        )
    return arrays
