"""The fMRI decoder jobs of one (backbone, subject): ridge and the small MLP, written as ``predictions.npz``.

Inputs: the subject's :class:`~megdecode.artifacts.fmri.FmriSubject` and the backbone's latents. Each voxel is
z-scored per session with that session's non-test trials
(:func:`~megdecode.artifacts.fmri.zscore_per_session`); targets are standardised with training images only.
``train`` trials fit, ``val`` trials choose alpha (ridge) or stop training (MLP). Test sets (the MEG study's
names): ``test_small`` = each test image once, its repetitions' z-scored betas averaged; ``test_large`` =
every test trial. The MLP reuses the brain module's objective
(:func:`~megdecode.models.losses.combined_loss`) and loop (:mod:`megdecode.training.loop`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from megdecode import io
from megdecode.artifacts.fmri import (
    TEST,
    FmriSubject,
    read_fmri_subject,
    repetition_groups,
    zscore_per_session,
)
from megdecode.artifacts.latents import Latents, read_latents
from megdecode.artifacts.predictions import CLIP, MSE, TargetScaler, write_predictions
from megdecode.artifacts.splits import PRED_SPLITS, TEST_LARGE, TEST_SMALL, TRAIN, VAL
from megdecode.devices import resolve_device
from megdecode.models.voxel_mlp import VoxelMLP, VoxelMLPConfig
from megdecode.ridge import fit_ridge
from megdecode.training.config import TrainingConfig
from megdecode.training.loop import (
    BrainWithTemperature,
    EarlyStopping,
    cpu_state,
    predict,
    run_epoch,
    val_top5,
)

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


def _write(data: VoxelData, path: Path | str, heads: Mapping[str, Mapping[str, np.ndarray]]) -> None:
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
        data = load_voxel_data(subject_dir, latents_dir)
        model = fit_ridge(data.x[TRAIN], data.targets(TRAIN), cfg["alphas"], data.x[VAL], data.targets(VAL))
        io.save_npz(model.to_arrays(), model_path)
        _write(data, predictions_path, {MSE: {s: model.predict(data.x[s]) for s in PRED_SPLITS}})
    log.info(
        "alpha %g (%s) on %d train / %d val trials",
        model.alpha,
        model.selection,
        len(data.x[TRAIN]),
        len(data.x[VAL]),
    )
    return model.alpha


class VoxelSet:
    """One split's z-scored voxels and standardised targets, with the brain module's ``batch`` interface."""

    def __init__(self, x: np.ndarray, targets: np.ndarray, image_ids: np.ndarray) -> None:
        self.x, self.targets, self.image_ids = np.ascontiguousarray(x, np.float32), targets, image_ids

    def __len__(self) -> int:
        return len(self.x)

    def batch(
        self, idx: np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, None, torch.Tensor]:
        idx = np.asarray(idx)
        return (
            torch.from_numpy(self.x[idx]).to(device),
            torch.zeros(len(idx), dtype=torch.int64, device=device),
            None,
            torch.from_numpy(self.targets[idx]).to(device),
        )


def train_fmri_mlp(
    subject_dir: Path | str,
    latents_dir: Path | str,
    predictions_path: Path | str,
    history_path: Path | str,
    mlp_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    seed: int,
    threads: int = 1,
) -> pd.DataFrame:
    """Train the voxel MLP with CLIP + MSE and early stopping on val; write both heads' predictions."""
    torch.set_num_threads(max(1, int(threads)))
    mcfg, cfg = VoxelMLPConfig.from_dict(mlp_cfg), TrainingConfig.from_dict(training_cfg)
    device = torch.device(resolve_device(cfg.device))
    data = load_voxel_data(subject_dir, latents_dir)
    sets = {s: VoxelSet(data.x[s], data.targets(s), data.image_ids[s]) for s in (TRAIN, *PRED_SPLITS)}
    history: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VoxelMLP(mcfg, data.x[TRAIN].shape[1], data.latents.shape)
        model = BrainWithTemperature(net, cfg.temperature_init, cfg.learn_temperature).to(device)
        optimizer = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        generator = torch.Generator().manual_seed(seed)
        stopper, best = EarlyStopping(cfg.patience, cfg.min_delta), cpu_state(model)
        for epoch in range(cfg.max_epochs):
            tic = time.perf_counter()
            tr = run_epoch(model, sets[TRAIN], cfg, device, optimizer, generator)
            va = run_epoch(model, sets[VAL], cfg, device)
            improved = stopper.update(va["loss"], epoch)
            if improved:
                best = cpu_state(model)
            history.append(
                {
                    "epoch": epoch,
                    **{f"train_{k}": v for k, v in tr.items()},
                    **{f"val_{k}": v for k, v in va.items()},
                    "val_top5_acc": val_top5(model, sets[VAL], device),
                    "best": improved,
                    "seconds": round(time.perf_counter() - tic, 3),
                }
            )
            if stopper.stop:
                break
        model.load_state_dict(best)
        preds = {s: predict(model, sets[s], device) for s in PRED_SPLITS}
    log.info("best epoch %d (val loss %.4f) of %d", stopper.best_epoch, stopper.best_loss, len(history))
    _write(data, predictions_path, {head: {s: preds[s][head] for s in PRED_SPLITS} for head in (MSE, CLIP)})
    table = pd.DataFrame(history)
    io.write_tsv(table, history_path)
    return table
