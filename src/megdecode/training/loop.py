"""The training loop of the brain module: model with its CLIP temperature, epochs, early stopping, inference.

Only ``train`` trials take gradient steps; only ``val`` trials decide early stopping, on the validation loss
(the paper's) or on the CLIP head's validation top-5 (``training.stop_on``). A run may track both criteria
(each with its own patience and best weights) and stops when every tracked criterion has stopped. A NaN or
infinite loss stops training with :class:`NonFiniteLossError` naming the epoch, the learning rate and, when
the inputs are to blame, the file that holds them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from megdecode.artifacts.preprocessed import non_finite_trials_message
from megdecode.metrics.retrieval import check_finite
from megdecode.models import BrainModule, BrainModuleConfig
from megdecode.models.losses import combined_loss
from megdecode.training.config import TrainingConfig
from megdecode.training.data import TrialSet

log = logging.getLogger(__name__)


class BrainWithTemperature(torch.nn.Module):
    """The brain module plus the CLIP loss's learnable inverse temperature (log-parametrised)."""

    def __init__(self, brain: BrainModule, temperature_init: float, learn_temperature: bool) -> None:
        super().__init__()
        self.brain = brain
        self.log_scale = torch.nn.Parameter(
            torch.tensor(float(np.log(1.0 / temperature_init))), requires_grad=learn_temperature
        )

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        return self.brain(*args, **kwargs)

    @property
    def logit_scale(self) -> Tensor:
        return self.log_scale.clamp(max=float(np.log(100.0))).exp()


def build_model(
    brain_cfg: BrainModuleConfig,
    cfg: TrainingConfig,
    positions: np.ndarray,
    n_subjects: int,
    n_times: int,
    latent_shape: tuple[int, ...],
    seed: int,
) -> BrainWithTemperature:
    """Initialise the model from ``seed`` without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        brain = BrainModule(brain_cfg, torch.from_numpy(positions), n_subjects, n_times, latent_shape)
        return BrainWithTemperature(brain, cfg.temperature_init, cfg.learn_temperature)


#: Early-stopping criteria: the history column each one reads and whether higher is better.
STOP_CRITERIA = {"loss": ("val_loss", False), "top5": ("val_top5_acc", True)}


@dataclass
class EarlyStopping:
    """Patience on one validation criterion (``criterion``: a key of :data:`STOP_CRITERIA`)."""

    patience: int
    min_delta: float = 0.0
    criterion: str = "loss"
    best_value: float = float("nan")
    best_epoch: int = -1
    bad_epochs: int = 0

    def __post_init__(self) -> None:
        if self.criterion not in STOP_CRITERIA:
            raise ValueError(
                f"unknown early-stopping criterion {self.criterion!r}; use one of {list(STOP_CRITERIA)}"
            )

    @property
    def column(self) -> str:
        """The history column this criterion reads."""
        return STOP_CRITERIA[self.criterion][0]

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch; True if it is the new best. A non-finite value is an error."""
        if not np.isfinite(value):
            raise FloatingPointError(f"epoch {epoch}: validation {self.criterion} is {value}")
        higher_is_better = STOP_CRITERIA[self.criterion][1]
        gain = (value - self.best_value) if higher_is_better else (self.best_value - value)
        if self.best_epoch < 0 or gain > self.min_delta:
            self.best_value, self.best_epoch, self.bad_epochs = float(value), epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stop(self) -> bool:
        return self.bad_epochs >= self.patience


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss: training stops rather than keep or score a model that learnt nothing.

    ``args``: what happened (``"the training loss is nan"``), then its likely cause and fix.
    """

    def __str__(self) -> str:
        return ": ".join(str(a) for a in self.args)


def _non_finite_input_files(data: TrialSet, chunk: int = 512) -> list[str]:
    """Per subject of ``data`` whose ``meg.npy`` has non-finite trials of the split: what to say about it."""
    found = []
    for s, subject in enumerate(getattr(data, "subjects", [])):
        rows = np.sort(data.rows[data.subject_index == s])
        bad = sum(
            int((~np.isfinite(np.asarray(subject.meg[rows[i : i + chunk]]))).any(axis=(1, 2)).sum())
            for i in range(0, len(rows), chunk)
        )
        if bad:
            found.append(non_finite_trials_message(subject.path, bad, data.split))
    return found


def _loss_error(value: float, phase: str, data: TrialSet, x: Tensor, y: Tensor) -> NonFiniteLossError:
    """The error for a non-finite ``phase`` loss on a batch ``(x, y)`` of ``data``, with its likely cause."""
    if not bool(torch.isfinite(x).all()):
        split = getattr(data, "split", "batch")
        files = _non_finite_input_files(data) or [f"the {split} inputs hold NaN or infinite values"]
        cause = "; ".join(files)
    elif not bool(torch.isfinite(y).all()):
        cause = "the target latents hold NaN or infinite values; delete the latents folder and run again"
    else:
        cause = (
            "the inputs are finite, so the model diverged: lower training.lr in the config (or check the "
            "scale of the inputs) and run again"
        )
    return NonFiniteLossError(f"the {phase} loss is {value}", cause)


def cpu_state(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def run_epoch(
    model: BrainWithTemperature,
    data: TrialSet,
    cfg: TrainingConfig,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One pass over ``data``: training (shuffled, with optimizer) or evaluation (fixed order)."""
    train = optimizer is not None
    model.train(train)
    n = len(data)
    order = torch.randperm(n, generator=generator).numpy() if train else np.arange(n)
    batches = [order[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
    if train and len(batches) > 1 and len(batches[-1]) < 2:
        batches = batches[:-1]  # a batch of one has no CLIP negatives nor batch-norm statistics
    totals = {"loss": 0.0, "clip": 0.0, "mse": 0.0}
    count = 0
    with torch.set_grad_enabled(train):
        for idx in batches:
            x, subj, mask, y = data.batch(idx, device)
            out = model(x, subj, mask, generator if train else None)
            losses = combined_loss(out, y, model.logit_scale, cfg)
            value = float(losses["loss"].detach())
            if not math.isfinite(value):
                raise _loss_error(value, "training" if train else "validation", data, x, y)
            if train:
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                optimizer.step()
            for k in totals:
                totals[k] += float(losses[k].detach()) * len(idx)
            count += len(idx)
    return {k: v / max(count, 1) for k, v in totals.items()}


@torch.no_grad()
def predict(
    model: BrainWithTemperature, data: TrialSet, device: torch.device, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Both heads' predictions for every trial of ``data`` (evaluation mode), float32 (n, D)."""
    model.eval()
    outs: dict[str, list[np.ndarray]] = {"clip": [], "mse": []}
    for i in range(0, len(data), batch_size):
        x, subj, mask, _ = data.batch(np.arange(i, min(i + batch_size, len(data))), device)
        out = model(x, subj, mask)
        for k in outs:
            outs[k].append(out[k].float().cpu().numpy())
    dim = int(np.prod(model.brain.latent_shape))
    return {k: np.concatenate(v) if v else np.zeros((0, dim), np.float32) for k, v in outs.items()}


def val_top5(model: BrainWithTemperature, data: TrialSet, device: torch.device) -> float:
    """Top-5 retrieval of the CLIP head among the validation images (monitoring only; ties count as hits)."""
    if len(data) == 0:
        return float("nan")
    pred = predict(model, data, device)["clip"]
    check_finite(pred, "validation predictions of the CLIP head")
    ids, first, inverse = np.unique(data.image_ids, return_index=True, return_inverse=True)
    candidates = data.targets[first]
    p = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)
    c = candidates / np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), 1e-12)
    sim = p @ c.T
    own = sim[np.arange(len(p)), inverse]
    return float(np.mean((sim > own[:, None]).sum(axis=1) < 5))


@dataclass
class TrainingRun:
    """The state one training run carries from epoch to epoch (what a checkpoint saves).

    ``stoppers`` holds one :class:`EarlyStopping` per tracked criterion, the configured one
    (``training.stop_on``) first; ``best_states`` the best weights by each."""

    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # batch order
    stoppers: dict[str, EarlyStopping]
    history: list[dict[str, Any]]
    best_states: dict[str, dict[str, Tensor]]
    start_epoch: int = 0

    @classmethod
    def start(
        cls, model: BrainWithTemperature, cfg: TrainingConfig, seed: int, track: tuple[str, ...] = ()
    ) -> TrainingRun:
        """A fresh run: Adam on the trainable parameters, the batch order seeded with ``seed``; early stopping
        on ``cfg.stop_on`` and on every other criterion in ``track``."""
        optimizer = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        generator = torch.Generator().manual_seed(seed)
        criteria = dict.fromkeys((cfg.stop_on, *track))
        stoppers = {c: EarlyStopping(cfg.patience, cfg.min_delta, c) for c in criteria}
        state = cpu_state(model)
        return cls(optimizer, generator, stoppers, [], {c: state for c in criteria})

    @property
    def stopper(self) -> EarlyStopping:
        """The configured criterion's early stopping."""
        return next(iter(self.stoppers.values()))

    @property
    def best_state(self) -> dict[str, Tensor]:
        """The best weights by the configured criterion."""
        return next(iter(self.best_states.values()))

    @property
    def stop(self) -> bool:
        """Every tracked criterion has run out of patience."""
        return all(s.stop for s in self.stoppers.values())


def fit_epochs(
    model: BrainWithTemperature,
    train: TrialSet,
    val: TrialSet,
    cfg: TrainingConfig,
    device: torch.device,
    run: TrainingRun,
    after_epoch: Callable[[int], None] | None = None,
    progress: bool = True,
    monitor_top5: bool = True,
) -> dict[str, Tensor]:
    """Epochs ``run.start_epoch``.. ``cfg.max_epochs`` with early stopping on ``val``; ``run`` is updated in
    place (one history row per epoch, the best weights by each tracked criterion) and the best weights by the
    configured criterion are returned. ``after_epoch(epoch)`` runs after each epoch (the training job writes
    its checkpoint there); ``monitor_top5`` adds the validation top-5 to each row (one more pass over
    ``val``), which stopping on top-5 needs and turns on."""
    monitor_top5 = monitor_top5 or "top5" in run.stoppers
    bar = tqdm(
        range(run.start_epoch, cfg.max_epochs),
        desc="epochs",
        initial=run.start_epoch,
        total=cfg.max_epochs,
        disable=not progress,
    )
    for epoch in bar:
        if run.stop:
            break
        tic = time.perf_counter()
        try:
            tr = run_epoch(model, train, cfg, device, run.optimizer, run.generator)
            va = run_epoch(model, val, cfg, device)
        except NonFiniteLossError as err:
            what, cause = err.args
            lr = run.optimizer.param_groups[0]["lr"]
            raise NonFiniteLossError(
                f"training stopped at epoch {epoch}: {what} (learning rate {lr:g})", cause
            ) from None
        row = {
            "epoch": epoch,
            **{f"train_{k}": v for k, v in tr.items()},
            **{f"val_{k}": v for k, v in va.items()},
        }
        if monitor_top5:
            row["val_top5_acc"] = val_top5(model, val, device)
        improved = {}
        for criterion, stopper in run.stoppers.items():
            if stopper.stop:
                continue
            improved[criterion] = stopper.update(row[stopper.column], epoch)
            if improved[criterion]:
                run.best_states[criterion] = cpu_state(model)
        row.update(
            temperature=float(1.0 / model.logit_scale.detach()),
            best=improved.get(next(iter(run.stoppers)), False),
            **{f"best_by_{c}": v for c, v in improved.items() if len(run.stoppers) > 1},
            seconds=round(time.perf_counter() - tic, 3),
        )
        run.history.append(row)
        bar.set_postfix(train=f"{tr['loss']:.3f}", val=f"{va['loss']:.3f}")
        log.info(
            "epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        )
        if after_epoch is not None:
            after_epoch(epoch)
    return run.best_state
