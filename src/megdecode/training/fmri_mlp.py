"""The fMRI MLP job of one (backbone, subject): the brain module's CLIP + MSE objective and training loop.

The data are :func:`megdecode.training.fmri.load_voxel_data`'s (z-scored per session, test sets as for ridge);
the network is :class:`~megdecode.models.voxel_mlp.VoxelMLP`; the loop, early stopping and loss are the brain
module's (:mod:`megdecode.training.loop`, :func:`~megdecode.models.losses.combined_loss`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from megdecode import io
from megdecode.artifacts.predictions import CLIP, MSE
from megdecode.artifacts.splits import PRED_SPLITS, TRAIN, VAL
from megdecode.devices import resolve_device
from megdecode.models.voxel_mlp import VoxelMLP, VoxelMLPConfig
from megdecode.training.config import TrainingConfig
from megdecode.training.fmri import load_voxel_data, write_fmri_predictions
from megdecode.training.loop import BrainWithTemperature, TrainingRun, fit_epochs, predict

log = logging.getLogger(__name__)


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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VoxelMLP(mcfg, data.x[TRAIN].shape[1], data.latents.shape)
        model = BrainWithTemperature(net, cfg.temperature_init, cfg.learn_temperature).to(device)
        run = TrainingRun.start(model, cfg, seed)
        best = fit_epochs(model, sets[TRAIN], sets[VAL], cfg, device, run, progress=False)
        history, stopper = run.history, run.stopper
        model.load_state_dict(best)
        preds = {s: predict(model, sets[s], device) for s in PRED_SPLITS}
    log.info(
        "best epoch %d (val %s %.4f) of %d",
        stopper.best_epoch,
        stopper.criterion,
        stopper.best_value,
        len(history),
    )
    write_fmri_predictions(
        data, predictions_path, {head: {s: preds[s][head] for s in PRED_SPLITS} for head in (MSE, CLIP)}
    )
    table = pd.DataFrame(history)
    io.write_tsv(table, history_path)
    return table
