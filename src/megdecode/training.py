"""Training of the brain module: data access, CLIP + MSE loss, early stopping, checkpoint/resume.

Only ``train`` trials are used for gradient steps and only ``val`` trials for early stopping;
``test_small``/``test_large`` trials are read once, after training, to write predictions.
Targets are standardised with statistics of the training images only. A checkpoint is written
after every epoch (model, optimizer, early-stopping state, RNG state), so a killed job restarts
where it stopped and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm.auto import tqdm

from megdecode import io
from megdecode.devices import resolve_device
from megdecode.models import BrainModule, BrainModuleConfig
from megdecode.training_data import (
    PRED_SPLITS,
    TRAIN,
    VAL,
    Latents,
    SubjectData,
    TargetScaler,
    check_no_leakage,
    load_latents,
    load_subject,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation hyper-parameters (the config's ``training`` section minus job-selection keys)."""

    lr: float = 3e-4
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 100
    patience: int = 10
    min_delta: float = 0.0
    clip_weight: float = 0.75
    clip_symmetric: bool = False
    temperature_init: float = 0.07
    learn_temperature: bool = True
    device: str = "auto"
    keep_checkpoints: bool = False

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """Keep the keys this dataclass knows; job-selection keys (backbones, seeds, ...) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the master seed and wildcards (stable across runs and machines)."""
    keys = [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(keys).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


# ----------------------------------------------------------------------------------------------- data


class TrialSet:
    """Trials of one split across subjects, on the model's channel set, with standardised targets.

    ``channel_map[s]`` gives, for subject ``s``, the model channel of each of its channels; model
    channels a subject lacks are zero-filled and masked out.
    """

    def __init__(
        self,
        subjects: Sequence[SubjectData],
        split: str,
        channel_names: Sequence[str],
        latents: Latents,
        scaler: TargetScaler,
    ) -> None:
        self.subjects = list(subjects)
        self.split = split
        self.n_channels = len(channel_names)
        position = {name: i for i, name in enumerate(channel_names)}
        self.channel_map = [np.array([position[c] for c in s.channels]) for s in self.subjects]
        self.masks = np.zeros((len(self.subjects), self.n_channels), bool)
        for s, cmap in enumerate(self.channel_map):
            self.masks[s, cmap] = True
        self.full = bool(self.masks.all())
        subj, rows = [], []
        for s, data in enumerate(self.subjects):
            r = np.flatnonzero(data.trials["split"].to_numpy(str) == split)
            subj.append(np.full(len(r), s))
            rows.append(r)
        self.subject_index = np.concatenate(subj) if subj else np.zeros(0, int)
        self.rows = np.concatenate(rows) if rows else np.zeros(0, int)
        self.image_ids = np.concatenate(
            [d.trials["image_id"].to_numpy(str)[r] for d, r in zip(self.subjects, rows, strict=True)]
        )
        self.targets = (
            scaler.transform(latents.values[latents.rows(self.image_ids)]) if len(self.rows) else None
        )

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, idx: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """(x, subject, mask or None, target) for positions ``idx`` of this set."""
        idx = np.asarray(idx)
        subj = self.subject_index[idx]
        n_times = self.subjects[0].meg.shape[2]
        x = np.zeros((len(idx), self.n_channels, n_times), np.float32)
        for s in np.unique(subj):
            sel = np.flatnonzero(subj == s)
            rows = self.rows[idx[sel]]
            order = np.argsort(rows)
            block = np.asarray(self.subjects[s].meg[rows[order]], np.float32)
            out = np.empty_like(block)
            out[order] = block
            if self.full and np.array_equal(self.channel_map[s], np.arange(self.n_channels)):
                x[sel] = out
            else:
                x[np.ix_(sel, self.channel_map[s])] = out
        mask = None if self.full else torch.from_numpy(self.masks[subj]).to(device)
        return (
            torch.from_numpy(x).to(device),
            torch.from_numpy(subj.astype(np.int64)).to(device),
            mask,
            torch.from_numpy(self.targets[idx]).to(device),
        )


# ---------------------------------------------------------------------------------------------- losses


def clip_loss(pred: Tensor, target: Tensor, logit_scale: Tensor | float, symmetric: bool = False) -> Tensor:
    """CLIP loss: cross-entropy of ``logit_scale * cos(pred_i, target_j)`` with the matching ``j = i``.

    ``logit_scale`` is the inverse temperature. One-directional (MEG -> image) unless ``symmetric``.
    """
    logits = logit_scale * F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T
    labels = torch.arange(len(pred), device=pred.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
    return loss


def combined_loss(
    out: Mapping[str, Tensor], target: Tensor, logit_scale: Tensor, cfg: TrainingConfig
) -> dict[str, Tensor]:
    """``lambda * CLIP + (1 - lambda) * MSE`` and its parts."""
    clip = clip_loss(out["clip"], target, logit_scale, cfg.clip_symmetric)
    mse = F.mse_loss(out["mse"], target)
    return {"loss": cfg.clip_weight * clip + (1 - cfg.clip_weight) * mse, "clip": clip, "mse": mse}


def top5_acc(pred: np.ndarray, candidates: np.ndarray, true_index: np.ndarray) -> float:
    """Fraction of predictions whose true candidate is among the 5 most cosine-similar (higher is better)."""
    p = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)
    c = candidates / np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), 1e-12)
    sim = p @ c.T
    own = sim[np.arange(len(p)), true_index]
    rank = (sim > own[:, None]).sum(axis=1)
    return float(np.mean(rank < 5))


# ------------------------------------------------------------------------------------------------ model


class Decoder(torch.nn.Module):
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


def union_channels(subjects: Sequence[SubjectData]) -> tuple[list[str], np.ndarray]:
    """Model channel set (first subject's order, then channels only later subjects have) and positions."""
    names: list[str] = []
    pos: dict[str, np.ndarray] = {}
    for s in subjects:
        for name, p in zip(s.channels, s.positions, strict=True):
            if name not in pos:
                names.append(name)
                pos[name] = p
            elif not np.allclose(pos[name], p, atol=1e-3):
                log.warning(
                    "channel %s has different layout positions across subjects; using the first", name
                )
    return names, np.stack([pos[n] for n in names]).astype(np.float32)


def build_decoder(
    brain_cfg: BrainModuleConfig,
    cfg: TrainingConfig,
    positions: np.ndarray,
    n_subjects: int,
    n_times: int,
    latent_shape: tuple[int, ...],
    seed: int,
) -> Decoder:
    """Initialise the model from ``seed`` without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        brain = BrainModule(brain_cfg, torch.from_numpy(positions), n_subjects, n_times, latent_shape)
        return Decoder(brain, cfg.temperature_init, cfg.learn_temperature)


# ------------------------------------------------------------------------------------------- training


@dataclass
class EarlyStopping:
    """Patience on the validation loss (lower is better)."""

    patience: int
    min_delta: float = 0.0
    best_loss: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, loss: float, epoch: int) -> bool:
        """Record an epoch; True if it is the new best."""
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stop(self) -> bool:
        return self.bad_epochs >= self.patience


def fingerprint(*parts: Any) -> str:
    """Hash of everything that determines a run, stored in checkpoints (a stale checkpoint is ignored)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic ``torch.save`` (tensors, numbers, strings, lists, dicts only: loadable with weights_only)."""
    with io.atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: start over rather than fail
        log.warning("ignoring unreadable checkpoint %s (%s)", path, err)
        return None
    if state.get("fingerprint") != expected_fingerprint:
        log.warning("ignoring checkpoint %s written for another config/data", path)
        return None
    return state


def _cpu_state(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def run_epoch(
    model: Decoder,
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
    model: Decoder, data: TrialSet, device: torch.device, batch_size: int = 256
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


def val_top5(model: Decoder, data: TrialSet, device: torch.device) -> float:
    """Top-5 retrieval of the CLIP head among the validation images (monitoring only)."""
    if len(data) == 0:
        return float("nan")
    pred = predict(model, data, device)["clip"]
    ids, first, inverse = np.unique(data.image_ids, return_index=True, return_inverse=True)
    return top5_acc(pred, data.targets[first], inverse)


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
    epoch (the sample rule of the time-resolved ridge, :func:`megdecode.evaluation.window_samples`);
    splits, scaling and early stopping are unchanged. Writes ``outputs`` and returns the per-epoch history.
    """
    torch.set_num_threads(max(1, int(threads)))
    bcfg = BrainModuleConfig.from_dict(brain_cfg)
    cfg = TrainingConfig.from_dict(training_cfg)
    device = torch.device(resolve_device(cfg.device))
    subjects = [load_subject(p, name) for name, p in subject_dirs.items()]
    if crop is not None:
        subjects = [crop_subject(s, crop) for s in subjects]
    for s in subjects:
        check_no_leakage(s.trials, str(s.path / "trials.tsv"))
    n_times = {s.meg.shape[2] for s in subjects}
    if len(n_times) != 1:
        raise ValueError(
            f"subjects have different numbers of time samples {sorted(n_times)}; preprocess alike"
        )
    latents = load_latents(latents_dir)
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
    log.info(
        "training on %d trials, early stopping on %d, device %s, %d threads",
        len(sets[TRAIN]),
        len(sets[VAL]),
        device,
        torch.get_num_threads(),
    )
    model = build_decoder(bcfg, cfg, positions, len(subjects), n_times.pop(), latents.shape, seed).to(device)
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    stopper = EarlyStopping(cfg.patience, cfg.min_delta)
    history: list[dict[str, Any]] = []
    best_state = _cpu_state(model)
    start_epoch = 0
    key = fingerprint(
        dataclasses.asdict(bcfg),
        dataclasses.asdict(cfg),
        seed,
        [(s.name, str(s.meg.shape), _file_stamp(s.path / "meg.npy")) for s in subjects],
        *([] if crop is None else [list(crop)]),
        _file_stamp(Path(latents_dir) / "latents.npy"),
    )
    state = load_checkpoint(outputs.checkpoint, key)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        best_state = state["best_model"]
        generator.set_state(state["generator"])
        stopper = EarlyStopping(**state["stopper"])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        log.info("resumed from %s after epoch %d", outputs.checkpoint, start_epoch - 1)
    bar = tqdm(range(start_epoch, cfg.max_epochs), desc="epochs", initial=start_epoch, total=cfg.max_epochs)
    for epoch in bar:
        if stopper.stop:
            break
        tic = time.perf_counter()
        tr = run_epoch(model, sets[TRAIN], cfg, device, optimizer, generator)
        va = run_epoch(model, sets[VAL], cfg, device)
        improved = stopper.update(va["loss"], epoch)
        if improved:
            best_state = _cpu_state(model)
        row = {
            "epoch": epoch,
            **{f"train_{k}": v for k, v in tr.items()},
            **{f"val_{k}": v for k, v in va.items()},
        }
        row.update(
            val_top5_acc=val_top5(model, sets[VAL], device),
            temperature=float(1.0 / model.logit_scale.detach()),
            best=improved,
            seconds=round(time.perf_counter() - tic, 3),
        )
        history.append(row)
        bar.set_postfix(train=f"{tr['loss']:.3f}", val=f"{va['loss']:.3f}", top5=f"{row['val_top5_acc']:.2f}")
        log.info(
            "epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        )
        save_checkpoint(
            outputs.checkpoint,
            {
                "fingerprint": key,
                "epoch": epoch,
                "model": _cpu_state(model),
                "optimizer": optimizer.state_dict(),
                "best_model": best_state,
                "generator": generator.get_state(),
                "stopper": dataclasses.asdict(stopper),
                "history": history,
            },
        )
    log.info("best epoch %d (val loss %.4f)", stopper.best_epoch, stopper.best_loss)
    model.load_state_dict(best_state)
    write_brain_outputs(model, sets, subjects, scaler, outputs, device, bcfg, cfg, seed, history)
    if not cfg.keep_checkpoints:
        outputs.checkpoint.unlink(missing_ok=True)
    return pd.DataFrame(history)


def crop_subject(subject: SubjectData, crop: tuple[float, float]) -> SubjectData:
    """The subject with ``meg`` cut to the samples of ``[tmin, tmax)`` (a view: memory-mapping kept)."""
    from megdecode.evaluation import Window, epoch_times, window_samples

    tmin, tmax = (float(t) for t in crop)
    if not tmax > tmin:
        raise ValueError(f"crop window needs tmin < tmax, got [{tmin}, {tmax}]")
    idx = window_samples(epoch_times(subject.info, subject.meg.shape[2]), Window("crop", tmin, tmax))
    meg = subject.meg[:, :, int(idx[0]) : int(idx[-1]) + 1]
    log.info("sub-%s: epochs cropped to [%g, %g) s, %d samples", subject.name, tmin, tmax, meg.shape[2])
    return dataclasses.replace(subject, meg=meg)


def _file_stamp(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


def write_brain_outputs(
    model: Decoder,
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
    """Predictions per subject and split, the history and the best weights (safetensors).

    ``{split}_pred`` is the MSE head (in the standardised target space, as the contract asks; what a
    generator de-standardises); ``{split}_pred_clip`` is the CLIP head (trained for cosine retrieval).
    """
    from safetensors.torch import save_file

    preds = {split: predict(model, sets[split], device) for split in PRED_SPLITS}
    for s, subject in enumerate(subjects):
        arrays: dict[str, np.ndarray] = {"target_mean": scaler.mean, "target_std": scaler.std}
        for split in PRED_SPLITS:
            sel = sets[split].subject_index == s
            arrays[f"{split}_pred"] = preds[split]["mse"][sel].astype(np.float32)
            arrays[f"{split}_pred_clip"] = preds[split]["clip"][sel].astype(np.float32)
            arrays[f"{split}_image_id"] = sets[split].image_ids[sel].astype(str)
        io.save_npz(arrays, outputs.predictions[subject.name])
    io.write_tsv(pd.DataFrame(history), outputs.history)
    meta = {
        "brain_module": json.dumps(dataclasses.asdict(bcfg)),
        "training": json.dumps(dataclasses.asdict(cfg)),
        "seed": str(seed),
        "subjects": json.dumps([s.name for s in subjects]),
        "latent_shape": json.dumps(list(model.brain.latent_shape)),
    }
    with io.atomic_output(outputs.model) as tmp:
        save_file({k: v.contiguous() for k, v in _cpu_state(model).items()}, str(tmp), metadata=meta)


@dataclass
class TrainedBrain:
    """A brain module read back from a training job's ``model.safetensors``."""

    brain: BrainModule
    subjects: list[str]
    latent_shape: tuple[int, ...]

    def subject_index(self, subject: str) -> int:
        if subject not in self.subjects:
            raise KeyError(f"subject {subject!r} was not trained in this model (subjects: {self.subjects})")
        return self.subjects.index(subject)


def load_trained_brain(path: Path | str) -> TrainedBrain:
    """Rebuild the brain module (evaluation mode, CPU) from a ``model.safetensors`` written by training."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:  # one read: metadata and tensors
            meta = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (FileNotFoundError, SafetensorError) as err:
        raise ValueError(f"cannot read {path}: {err}; rerun the training rule that writes it") from err
    missing = [k for k in ("brain_module", "subjects", "latent_shape") if k not in meta]
    if missing:
        raise ValueError(f"{path} lacks metadata {missing}: not written by megdecode's training")
    subjects = list(json.loads(meta["subjects"]))
    latent_shape = tuple(json.loads(meta["latent_shape"]))
    weights = {k.removeprefix("brain."): v for k, v in state.items() if k.startswith("brain.")}
    time_weight = weights.get("aggregate.time_weight")
    brain = BrainModule(
        BrainModuleConfig.from_dict(json.loads(meta["brain_module"])),
        weights["spatial.positions"],
        len(subjects),
        0 if time_weight is None else len(time_weight),
        latent_shape,
    )
    brain.load_state_dict(weights)
    return TrainedBrain(brain.eval(), subjects, latent_shape)
