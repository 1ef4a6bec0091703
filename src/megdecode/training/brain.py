"""The brain-module training job: data, CLIP + MSE loss, early stopping, checkpoint/resume, outputs.

``test_small``/``test_large`` trials are read once, after training, to write predictions. Targets are
standardised with statistics of the training images only. A checkpoint is written after every epoch (model,
optimizer, early-stopping state, RNG state), so a killed job restarts where it stopped and ends with the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from megdecode import io
from megdecode.artifacts.brain_model import save_trained_brain
from megdecode.artifacts.latents import VALUES as LATENT_VALUES
from megdecode.artifacts.latents import Latents, read_latents
from megdecode.artifacts.predictions import CLIP, MSE, TargetScaler, write_predictions
from megdecode.artifacts.preprocessed import MEG, TRIALS, SubjectData, read_subject
from megdecode.artifacts.splits import PRED_SPLITS, TRAIN, VAL, check_no_leakage
from megdecode.devices import resolve_device
from megdecode.models import BrainModuleConfig
from megdecode.training.checkpoint import file_stamp, fingerprint, load_checkpoint, save_checkpoint
from megdecode.training.config import TrainingConfig
from megdecode.training.data import TrialSet, crop_subject, union_channels
from megdecode.training.loop import (
    BrainWithTemperature,
    EarlyStopping,
    TrainingRun,
    build_model,
    cpu_state,
    fit_epochs,
    predict,
)

log = logging.getLogger(__name__)


@dataclass
class BrainOutputs:
    """Where a training job writes: weights, history, and one predictions file per subject."""

    model: Path
    history: Path
    predictions: dict[str, Path]
    checkpoint: Path


def train_brain_module(
    subject_dirs: Mapping[str, Path | str],
    latents_dir: Path | str,
    outputs: BrainOutputs,
    brain_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    seed: int,
    threads: int = 1,
    crop: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Train one brain module on the given subjects (one: per-subject model; several: shared model).

    ``crop = (tmin, tmax)`` (seconds from image onset) keeps only the samples of that window of every
    epoch (:func:`megdecode.artifacts.windows.window_samples`); splits, scaling and early stopping are
    unchanged. Writes ``outputs`` and returns the per-epoch history.
    """
    torch.set_num_threads(max(1, int(threads)))
    bcfg = BrainModuleConfig.from_dict(brain_cfg)
    cfg = TrainingConfig.from_dict(training_cfg)
    device = torch.device(resolve_device(cfg.device))
    subjects = read_training_subjects(subject_dirs, crop, str(training_cfg.get("validation", "trials")))
    latents = read_latents(latents_dir)
    scaler, positions, sets = trial_sets(subjects, latents)
    log.info(
        "training on %d trials, early stopping on %d, device %s, %d threads",
        len(sets[TRAIN]),
        len(sets[VAL]),
        device,
        torch.get_num_threads(),
    )
    n_times = subjects[0].meg.shape[2]
    model = build_model(bcfg, cfg, positions, len(subjects), n_times, latents.shape, seed).to(device)
    run = TrainingRun.start(model, cfg, seed)
    key = fingerprint(
        dataclasses.asdict(bcfg),
        dataclasses.asdict(cfg),
        seed,
        [(s.name, str(s.meg.shape), file_stamp(s.path / MEG)) for s in subjects],
        *([] if crop is None else [list(crop)]),
        file_stamp(latents.path / LATENT_VALUES),
    )
    resume(model, run, outputs.checkpoint, key)
    save = checkpointer(model, run, outputs.checkpoint, key)
    model.load_state_dict(fit_epochs(model, sets[TRAIN], sets[VAL], cfg, device, run, after_epoch=save))
    stopper, history = run.stopper, run.history
    log.info("best epoch %d (val %s %.4f)", stopper.best_epoch, stopper.criterion, stopper.best_value)
    write_brain_outputs(model, sets, subjects, scaler, outputs, device, bcfg, cfg, seed, history)
    if not cfg.keep_checkpoints:
        outputs.checkpoint.unlink(missing_ok=True)
    return pd.DataFrame(history)


def read_training_subjects(
    subject_dirs: Mapping[str, Path | str], crop: tuple[float, float] | None, validation: str = "trials"
) -> list[SubjectData]:
    """The subjects' preprocessed folders (cropped to ``crop``), checked for leakage (with concept
    ``validation``, no validation concept trained on by any subject) and alike in time."""
    subjects = [read_subject(p, name) for name, p in subject_dirs.items()]
    if crop is not None:
        subjects = [crop_subject(s, crop) for s in subjects]
    for s in subjects:
        check_no_leakage(s.trials, str(s.path / TRIALS))
    check_no_leakage(pd.concat([s.trials for s in subjects]), "the training subjects together", validation)
    n_times = {s.meg.shape[2] for s in subjects}
    if len(n_times) != 1:
        raise ValueError(
            f"subjects have different numbers of time samples {sorted(n_times)}; preprocess alike"
        )
    return subjects


def trial_sets(
    subjects: Sequence[SubjectData], latents: Latents
) -> tuple[TargetScaler, np.ndarray, dict[str, TrialSet]]:
    """The target scaler (fitted on training images only), the sensor positions of the channels' union and
    the trials of every split."""
    train_ids = np.concatenate(
        [s.trials.loc[s.trials["split"] == TRAIN, "image_id"].to_numpy(str) for s in subjects]
    )
    scaler = TargetScaler.fit(latents, train_ids)
    names, positions = union_channels(subjects)
    sets = {split: TrialSet(subjects, split, names, latents, scaler) for split in (TRAIN, *PRED_SPLITS)}
    if len(sets[TRAIN]) < 2 or len(sets[VAL]) < 2:
        raise ValueError(
            f"{[str(s.path) for s in subjects]}: need >= 2 train and >= 2 val trials "
            f"(got {len(sets[TRAIN])} and {len(sets[VAL])}); check the split settings of preprocessing"
        )
    return scaler, positions, sets


def resume(model: BrainWithTemperature, run: TrainingRun, checkpoint: Path, key: str) -> None:
    """Continue from ``checkpoint`` if it was written by this very job (same ``key``): weights, optimizer,
    RNG, early-stopping state and history, from the epoch after the last one saved."""
    state = load_checkpoint(checkpoint, key)
    if state is None:
        return
    model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.generator.set_state(state["generator"])
    run.stoppers = {c: EarlyStopping(**v) for c, v in state["stoppers"].items()}
    run.history, run.best_states = list(state["history"]), dict(state["best_models"])
    run.start_epoch = int(state["epoch"]) + 1
    log.info("resumed from %s after epoch %d", checkpoint, run.start_epoch - 1)


def checkpointer(
    model: BrainWithTemperature, run: TrainingRun, checkpoint: Path, key: str
) -> Callable[[int], None]:
    """``save(epoch)``: write everything :func:`resume` needs after an epoch."""

    def save(epoch: int) -> None:
        save_checkpoint(
            checkpoint,
            {
                "fingerprint": key,
                "epoch": epoch,
                "model": cpu_state(model),
                "optimizer": run.optimizer.state_dict(),
                "best_models": run.best_states,
                "generator": run.generator.get_state(),
                "stoppers": {c: dataclasses.asdict(v) for c, v in run.stoppers.items()},
                "history": run.history,
            },
        )

    return save


def write_brain_outputs(
    model: BrainWithTemperature,
    sets: Mapping[str, TrialSet],
    subjects: Sequence[SubjectData],
    scaler: TargetScaler,
    outputs: BrainOutputs,
    device: torch.device,
    bcfg: BrainModuleConfig,
    cfg: TrainingConfig,
    seed: int,
    history: list[dict[str, Any]],
) -> None:
    """Predictions per subject (both heads, every split), the history and the best weights."""
    preds = {split: predict(model, sets[split], device) for split in PRED_SPLITS}
    for s, subject in enumerate(subjects):
        select = {split: sets[split].subject_index == s for split in PRED_SPLITS}
        write_predictions(
            outputs.predictions[subject.name],
            {split: sets[split].image_ids[select[split]] for split in PRED_SPLITS},
            {
                head: {split: preds[split][head][select[split]] for split in PRED_SPLITS}
                for head in (MSE, CLIP)
            },
            scaler.mean,
            scaler.std,
        )
    io.write_tsv(pd.DataFrame(history), outputs.history)
    save_trained_brain(
        outputs.model,
        cpu_state(model),
        dataclasses.asdict(bcfg),
        dataclasses.asdict(cfg),
        seed,
        [s.name for s in subjects],
        model.brain.latent_shape,
    )
