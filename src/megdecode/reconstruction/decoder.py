"""The offline default generator: a small convolutional decoder that inverts one backbone's latents.

It is trained on stimulus images of TRAIN concepts only (true latent -> image), never on MEG and never on a
test image; at reconstruction time it receives the latents predicted from MEG. Inputs are standardised with
training-image statistics and optionally projected on their first principal components (fit on the same
training images), which keeps the first layer small for large latents such as CLIP tokens (257 x 768).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.latents import read_latents
from megdecode.artifacts.reconstruction import read_decoder, write_decoder
from megdecode.artifacts.stimuli import read_stimuli, train_image_ids
from megdecode.config import dataclass_from_section
from megdecode.reconstruction.base import Predicted, load_images, to_uint8
from megdecode.seeds import derive_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecoderParams:
    """Hyper-parameters of the latent -> image decoder (config ``reconstruction.decoder``)."""

    image_size: int
    width: int
    pca_components: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    val_fraction: float

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DecoderParams:
        params = dataclass_from_section(cls, cfg, "reconstruction.decoder")
        n_up = math.log2(params.image_size / 4)
        if n_up < 1 or n_up != int(n_up):
            raise ValueError(
                f"reconstruction.decoder.image_size must be 4 * 2**k >= 8, got {params.image_size}"
            )
        return params


def build_decoder(in_dim: int, image_size: int, width: int) -> Any:
    """Linear -> 4x4 map -> (upsample x2, conv 3x3, GroupNorm, GELU) blocks -> conv to RGB -> sigmoid."""
    import torch.nn as nn

    n_up = int(math.log2(image_size / 4))
    channels = [max(width // (2**i), 16) for i in range(n_up + 1)]
    layers: list[nn.Module] = [
        nn.Linear(in_dim, channels[0] * 16),
        nn.Unflatten(1, (channels[0], 4, 4)),
        nn.GELU(),
    ]
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        layers += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(min(8, c_out), c_out),
            nn.GELU(),
        ]
    layers += [nn.Conv2d(channels[-1], 3, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


@dataclass
class InputTransform:
    """Standardise latents with training-image statistics, then project on principal components. ``low`` /
    ``high``: each dimension's range over the training latents (:meth:`clip` keeps inputs inside it)."""

    mean: np.ndarray  # (d,)
    std: np.ndarray  # (d,)
    components: np.ndarray  # (k, d); empty (0, d) means no projection
    low: np.ndarray  # (d,)
    high: np.ndarray  # (d,)

    @classmethod
    def fit(cls, latents: np.ndarray, n_components: int) -> InputTransform:
        latents = np.asarray(latents).reshape(len(latents), -1)
        mean = latents.mean(axis=0)
        std = latents.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        z = (latents - mean) / std
        k = min(n_components, len(z) - 1, z.shape[1])
        if n_components <= 0 or k >= z.shape[1]:
            components = np.zeros((0, z.shape[1]), dtype=np.float32)
        else:
            _, _, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
            components = vt[:k]
            components *= np.sign(components[:, :1] + 1e-12)  # fixed sign: deterministic bytes
        return cls(
            mean.astype(np.float32),
            std.astype(np.float32),
            components.astype(np.float32),
            latents.min(axis=0).astype(np.float32),
            latents.max(axis=0).astype(np.float32),
        )

    def clip(self, latents: np.ndarray) -> np.ndarray:
        """Latents clipped, per dimension, to the range of the training latents (a prediction outside it, e.g.
        a negative histogram bin, is not an image the decoder has seen)."""
        flat = np.asarray(latents, dtype=np.float32).reshape(len(latents), -1)
        return np.clip(flat, self.low, self.high)

    @property
    def out_dim(self) -> int:
        return len(self.components) if len(self.components) else len(self.mean)

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        latents = np.asarray(latents, dtype=np.float32).reshape(len(latents), -1)
        if latents.shape[1] != len(self.mean):
            raise ValueError(
                f"latent dim {latents.shape[1]} does not match the decoder's input dim {len(self.mean)}"
            )
        z = (latents - self.mean) / self.std
        if len(self.components):
            z = z @ self.components.T / math.sqrt(len(self.mean))
        return z.astype(np.float32)


def fit_decoder(
    latents: np.ndarray, images: np.ndarray, params: DecoderParams, seed: int
) -> tuple[Any, InputTransform, pd.DataFrame]:
    """Train a decoder on (latent, image) pairs; returns the model, input transform and per-epoch history.

    A random ``val_fraction`` of the pairs (seeded; all training-concept images) is held out: the weights of
    the epoch with the lowest validation MSE are kept, and that MSE is logged next to the mean training
    image's (the trivial baseline a decoder must beat).
    """
    import torch
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    n = len(latents)
    order = rng.permutation(n)
    n_val = int(round(params.val_fraction * n)) if n >= 10 else 0
    val_idx, fit_idx = order[:n_val], order[n_val:]
    transform = InputTransform.fit(latents[fit_idx], params.pca_components)
    x = torch.from_numpy(transform(latents))
    y = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    mean_image = y[fit_idx].mean(dim=0, keepdim=True)

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_decoder(transform.out_dim, params.image_size, params.width)
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(params.epochs, 1))
    fit_t = torch.from_numpy(fit_idx)
    rows = []
    best_val, best_state = float("inf"), None
    for epoch in tqdm(range(params.epochs), desc="decoder", mininterval=5):
        model.train()
        perm = fit_t[torch.randperm(len(fit_t), generator=gen)]
        total = 0.0
        for start in range(0, len(perm), params.batch_size):
            idx = perm[start : start + params.batch_size]
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        row = {"epoch": epoch, "train_mse": total / len(perm)}
        if n_val:
            model.eval()
            with torch.no_grad():
                vi = torch.from_numpy(val_idx)
                row["val_mse"] = float(torch.nn.functional.mse_loss(model(x[vi]), y[vi]))
                row["val_mse_mean_image"] = float(((y[vi] - mean_image) ** 2).mean())
            if row["val_mse"] < best_val:
                best_val = row["val_mse"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        rows.append(row)
    history = pd.DataFrame(rows)
    if best_state is not None:  # early stopping on held-out training-concept images
        model.load_state_dict(best_state)
        history["selected"] = history["val_mse"] == best_val
    model.eval()
    best = history.loc[history["val_mse"].idxmin()] if n_val else history.iloc[-1]
    log.info(
        "decoder trained on %d images, kept epoch %d: %s", len(fit_idx), int(best["epoch"]), best.to_dict()
    )
    return model, transform, history


def train_decoder(
    latent_dir: Path | str,
    stimuli_tsv: Path | str,
    images_root: Path | str,
    out_model: Path | str,
    out_meta: Path | str,
    out_history: Path | str,
    cfg: Mapping[str, Any],
    backbone: str,
    seed: int,
) -> None:
    """Rule ``train_decoder``: fit on TRAIN-concept ``exp`` stimuli of one backbone; save safetensors."""
    params = DecoderParams.from_config(cfg)
    stimuli = read_stimuli(stimuli_tsv)
    table = read_latents(latent_dir)
    ids = [i for i in train_image_ids(stimuli) if i in set(table.image_ids.tolist())]
    if len(ids) < 2:
        raise ValueError(
            f"{latent_dir}: fewer than 2 training-concept images have latents; cannot train a decoder"
        )
    log.info(
        "decoder for backbone %s: %d training-concept images, latent shape %s",
        backbone,
        len(ids),
        table.shape,
    )
    images = load_images(stimuli, images_root, ids, params.image_size)
    run_seed = derive_seed(seed, "decoder", backbone)
    model, transform, history = fit_decoder(table.get(ids, np.float32), images, params, run_seed)
    write_decoder(
        _state_tensors(model, transform),
        {
            "backbone": backbone,
            "params": asdict(params),
            "seed": run_seed,
            "in_dim": int(len(transform.mean)),
            "latent_shape": list(table.shape),
            "n_train_images": len(ids),
            "selected_epoch": _selected(history),
            "final": history.iloc[-1].to_dict(),
        },
        history,
        out_model,
        out_meta,
        out_history,
    )


def _selected(history: pd.DataFrame) -> dict[str, float]:
    rows = history[history["selected"]] if "selected" in history else history.iloc[[-1]]
    return {k: float(v) for k, v in rows.iloc[0].items()}


def _state_tensors(model: Any, transform: InputTransform) -> dict[str, Any]:
    import torch

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors["input.mean"] = torch.from_numpy(transform.mean)
    tensors["input.std"] = torch.from_numpy(transform.std)
    tensors["input.components"] = torch.from_numpy(np.ascontiguousarray(transform.components))
    tensors["input.low"] = torch.from_numpy(transform.low)
    tensors["input.high"] = torch.from_numpy(transform.high)
    return tensors


class DecoderGenerator:
    """Generator ``decoder``: predicted latents of one backbone -> images through a trained decoder.

    ``clip``: clip the predictions to the training latents' range first
    (``reconstruction.clip_predictions``)."""

    name = "decoder"

    def __init__(self, model_path: Path | str, meta_path: Path | str, clip: bool = False) -> None:
        import torch

        meta, tensors = read_decoder(model_path, meta_path)
        self.backbone: str = meta["backbone"]
        params = DecoderParams.from_config(meta["params"])
        missing = [k for k in ("input.low", "input.high") if k not in tensors]
        if missing:
            raise ValueError(
                f"{model_path} lacks {missing}; rerun the rule train_decoder (--forcerun train_decoder)"
            )
        self.transform = InputTransform(
            *(tensors[f"input.{k}"].numpy() for k in ("mean", "std", "components", "low", "high"))
        )
        self.clip = bool(clip)
        self.model = build_decoder(self.transform.out_dim, params.image_size, params.width)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.model.eval()
        self._torch = torch

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Latents in the backbone's space -> uint8 images (clipped to the training range if ``clip``)."""
        if self.clip:
            latents = self.transform.clip(latents)
        with self._torch.no_grad():
            out = self.model(self._torch.from_numpy(self.transform(latents)))
        return to_uint8(out.permute(0, 2, 3, 1).numpy())

    def generate(self, predictions: Mapping[str, Predicted]) -> np.ndarray:
        if self.backbone not in predictions:
            raise KeyError(
                f"decoder was trained for backbone {self.backbone!r}; got predictions {list(predictions)}"
            )
        return self.decode(predictions[self.backbone].latents)
