"""The fMRI decoder jobs of one (backbone, subject): ridge and the small MLP, written as ``predictions.npz``.

Inputs: the subject's :class:`~megdecode.artifacts.fmri.FmriSubject` and the backbone's latents. Each voxel is
z-scored per session with that session's non-test trials
(:func:`~megdecode.artifacts.fmri.zscore_per_session`); targets are standardised with training images only.
``train`` trials fit, ``val`` trials choose alpha (ridge) or stop training (MLP). Test sets (the MEG study's
names): ``test_small`` = each test image once, its repetitions' z-scored betas averaged; ``test_large`` =
every test trial. The MLP job is :mod:`megdecode.training.fmri_mlp`; no torch import here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from megdecode.artifacts.fmri import (
    TEST,
    FmriSubject,
    read_fmri_subject,
    repetition_groups,
    zscore_per_session,
)
from megdecode.artifacts.latents import Latents, read_latents
from megdecode.artifacts.predictions import TargetScaler, write_predictions
from megdecode.artifacts.splits import PRED_SPLITS, TEST_LARGE, TEST_SMALL, TRAIN, VAL
from megdecode.training.ridge import fit_and_write_ridge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoxelData:
    """Decoder inputs per split (``train``, ``val``, ``test_small``, ``test_large``): z-scored voxels and
    ids."""

    x: Mapping[str, np.ndarray]  # split -> (n, voxels) float32
    image_ids: Mapping[str, np.ndarray]  # split -> (n,) str
    scaler: TargetScaler
    latents: Latents
    subject: FmriSubject

    def targets(self, split: str) -> np.ndarray:
        return self.scaler.transform(self.latents.values[self.latents.rows(self.image_ids[split])])


def load_voxel_data(subject_dir: Path | str, latents_dir: Path | str) -> VoxelData:
    """Read, z-score per session (non-test statistics) and split one subject's betas; targets' scaler."""
    subject = read_fmri_subject(subject_dir)
    latents = read_latents(latents_dir)
    z = zscore_per_session(np.asarray(subject.betas), subject.trials)
    split = subject.trials["split"].to_numpy(str)
    ids = subject.trials["image_id"].to_numpy(str)
    if unknown := sorted(set(ids) - set(latents.image_ids.tolist())):
        raise ValueError(
            f"{subject.path}: images {unknown[:5]} have no latent in {latents.path}; the fMRI study must "
            "use the study's stimuli table (rerun the latents job after the stimuli changed)"
        )
    x = {s: z[split == s] for s in (TRAIN, VAL)}
    image_ids = {s: ids[split == s] for s in (TRAIN, VAL)}
    groups = repetition_groups(subject.trials)
    x[TEST_SMALL] = np.stack([z[rows].mean(axis=0) for rows in groups.values()]) if groups else z[:0]
    image_ids[TEST_SMALL] = np.array(list(groups), dtype=str)
    x[TEST_LARGE], image_ids[TEST_LARGE] = z[split == TEST], ids[split == TEST]
    if len(x[TRAIN]) < 2 or len(x[VAL]) < 2:
        raise ValueError(
            f"{subject.path}: need >= 2 train and >= 2 val trials, got {len(x[TRAIN])}, {len(x[VAL])}"
        )
    scaler = TargetScaler.fit(latents, image_ids[TRAIN])
    return VoxelData(x, image_ids, scaler, latents, subject)


def write_fmri_predictions(
    data: VoxelData, path: Path | str, heads: Mapping[str, Mapping[str, np.ndarray]]
) -> None:
    write_predictions(
        path, {s: data.image_ids[s] for s in PRED_SPLITS}, heads, data.scaler.mean, data.scaler.std
    )


def train_fmri_ridge(
    subject_dir: Path | str,
    latents_dir: Path | str,
    predictions_path: Path | str,
    model_path: Path | str,
    cfg: Mapping[str, Any],
    threads: int = 1,
) -> float:
    """Ridge (alpha on val) from z-scored voxels to the latent; writes predictions (MSE head) and the
    model."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, int(threads))):
        data = load_voxel_data(subject_dir, latents_dir)  # >= 2 val trials: alpha is chosen on val
        model = fit_and_write_ridge(
            data.x.__getitem__,
            data.image_ids,
            data.latents,
            cfg["alphas"],
            True,
            model_path,
            predictions_path,
        )
    log.info(
        "alpha %g (%s) on %d train / %d val trials",
        model.alpha,
        model.selection,
        len(data.x[TRAIN]),
        len(data.x[VAL]),
    )
    return model.alpha
