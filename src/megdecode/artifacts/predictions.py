"""One decoder's predictions for one subject: ``predictions.npz`` (no pickle).

For each split ``s`` of :data:`~megdecode.artifacts.splits.PRED_SPLITS`: ``{s}_image_id`` (unicode) and, per
head, the predicted latents float32 (n, dim) in the standardised target space (dim = the flattened latent
size): ``{s}_pred`` is the regression (MSE) head, the one every decoder has; ``{s}_pred_clip`` is the brain
module's CLIP head. ``target_mean``/``target_std`` (flattened, from training images only) standardise
candidates the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode import io
from megdecode.artifacts.latents import Latents
from megdecode.artifacts.splits import PRED_SPLITS

MSE, CLIP = "mse", "clip"
HEAD_SUFFIX = {MSE: "_pred", CLIP: "_pred_clip"}
# trained with the contrastive loss: the head retrieval scores, wherever a decoder has it
RETRIEVAL_HEAD = CLIP


@dataclass(frozen=True)
class TargetScaler:
    """Per-dimension standardisation of flattened latents, fitted on training images only (dimensions with
    SD <= eps there are only centred)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, latents: Latents, train_image_ids: np.ndarray, eps: float = 1e-6) -> TargetScaler:
        ids = pd.unique(pd.Series(list(train_image_ids), dtype=str))
        if len(ids) < 2:
            raise ValueError("need at least 2 training images to standardise the targets")
        flat = np.asarray(latents.values[np.sort(latents.rows(ids))], np.float64).reshape(len(ids), -1)
        std = flat.std(axis=0)
        # a dimension (nearly) constant over the training images is only centred, as in `standardise`:
        # dividing by eps would blow a val or test image's value there up to ~1/eps
        return cls(flat.mean(axis=0).astype(np.float32), np.where(std > eps, std, 1.0).astype(np.float32))

    def transform(self, values: np.ndarray) -> np.ndarray:
        flat = np.asarray(values, np.float32).reshape(len(values), -1)
        return (flat - self.mean) / self.std


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std in float64; zero-variance dims are only centred."""
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    return (np.asarray(x, dtype=np.float64) - mean) / np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class Predictions:
    """Predictions of one decoder for one subject, per split and head."""

    image_ids: Mapping[str, np.ndarray]  # split -> (n,) str
    heads: Mapping[str, Mapping[str, np.ndarray]]  # head -> split -> (n, dim) float32, standardised
    target_mean: np.ndarray
    target_std: np.ndarray
    path: Path = Path("<memory>")

    def has(self, split: str, head: str = MSE) -> bool:
        return split in self.heads.get(head, {})

    @property
    def head_names(self) -> list[str]:
        """Heads present, the retrieval head first (brain module: ``clip``, then ``mse``; ridge: ``mse``)."""
        return sorted(self.heads, key=lambda h: h != RETRIEVAL_HEAD)

    def pred(self, split: str, head: str = MSE) -> np.ndarray:
        """(n, dim) predictions of ``split`` from ``head``, in the standardised target space."""
        if not self.has(split, head):
            raise KeyError(f"{self.path} has no {split}{HEAD_SUFFIX[head]} array; rerun the training job")
        return self.heads[head][split]

    def destandardised(self, split: str, head: str = MSE) -> np.ndarray:
        """The predictions in the backbone's own latent space (float32)."""
        pred = self.pred(split, head).astype(np.float32).reshape(len(self.image_ids[split]), -1)
        return pred * self.target_std + self.target_mean

    def candidates(self, latents: Latents, image_ids: np.ndarray) -> np.ndarray:
        """True latents of ``image_ids`` standardised like the predictions (float64)."""
        return standardise(latents.get(image_ids), self.target_mean, self.target_std)


def write_predictions(
    path: Path | str,
    image_ids: Mapping[str, np.ndarray],
    heads: Mapping[str, Mapping[str, np.ndarray]],
    target_mean: np.ndarray,
    target_std: np.ndarray,
) -> None:
    """Write ``predictions.npz`` (every split of :data:`PRED_SPLITS`, every head given)."""
    arrays: dict[str, np.ndarray] = {"target_mean": target_mean, "target_std": target_std}
    for split in PRED_SPLITS:
        for head, per_split in heads.items():
            arrays[f"{split}{HEAD_SUFFIX[head]}"] = np.asarray(per_split[split], np.float32)
        arrays[f"{split}_image_id"] = np.asarray(image_ids[split]).astype(str)
    io.save_npz(arrays, path)


def read_predictions(path: Path | str) -> Predictions:
    """Read and check a ``predictions.npz``; a missing, inconsistent or non-finite array names the file."""
    path = Path(path)
    data = io.load_npz(path)
    missing = [k for k in ("target_mean", "target_std") if k not in data]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing} (docs/ARCHITECTURE.md); rerun the training job")
    mean = data["target_mean"].astype(np.float32).reshape(-1)
    std = data["target_std"].astype(np.float32).reshape(-1)
    image_ids: dict[str, np.ndarray] = {}
    heads: dict[str, dict[str, np.ndarray]] = {}
    for split in PRED_SPLITS:
        if f"{split}_image_id" not in data:
            continue
        ids = data[f"{split}_image_id"].astype(str)
        image_ids[split] = ids
        for head, suffix in HEAD_SUFFIX.items():
            key = f"{split}{suffix}"
            if key not in data:
                continue
            pred = data[key]
            if len(pred) != len(ids) or (len(pred) and pred.reshape(len(pred), -1).shape[1] != len(mean)):
                raise ValueError(
                    f"{path}: {key} has shape {pred.shape} for {len(ids)} image ids and "
                    f"{len(mean)} target dims; rerun the training job"
                )
            bad = io.non_finite_rows(pred)
            if len(bad):
                raise ValueError(
                    f"{path}: {key} holds NaN or infinite values for {len(bad)} of {len(pred)} trial(s) "
                    f"(first: {str(ids[bad[0]])!r}); they cannot be scored. The MEG of those trials or the "
                    "model that predicted them is not finite: check the subject's preprocessed meg.npy, then "
                    f"delete {path} and run the same snakemake command again"
                )
            heads.setdefault(head, {})[split] = pred
    return Predictions(image_ids, heads, mean, std, path)
