"""Torch-free data access for training jobs: preprocessed subjects, latents, target scaling, leakage checks.

Shared by the brain module (``megdecode.training``) and the ridge baseline (``megdecode.ridge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode import io

TRAIN, VAL = "train", "val"
TEST_SPLITS = ("test_small", "test_large")
PRED_SPLITS = (VAL, *TEST_SPLITS)
TRIAL_COLUMNS = ("subject", "image_id", "concept", "split")


class LeakageError(ValueError):
    """A test image or concept would reach training or model selection."""


@dataclass
class SubjectData:
    """One subject's preprocessed arrays (``meg`` is memory-mapped)."""

    name: str
    meg: np.ndarray
    trials: pd.DataFrame
    channels: list[str]
    positions: np.ndarray
    info: dict[str, Any]
    path: Path


def load_subject(path: Path | str, name: str | None = None) -> SubjectData:
    """Read ``{R}/preprocessed/sub-X/`` (meg.npy, trials.tsv, channels.tsv, info.json) and check it."""
    path = Path(path)
    meg = io.load_npy(path / "meg.npy", mmap=True)
    trials = io.read_tsv(path / "trials.tsv", dtype={"subject": str, "image_id": str, "concept": str})
    channels = io.read_tsv(path / "channels.tsv", dtype={"name": str})
    info = io.read_json(path / "info.json")
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"{path / 'trials.tsv'} lacks columns {missing}; rerun preprocessing")
    if meg.ndim != 3 or meg.shape[0] != len(trials) or meg.shape[1] != len(channels):
        raise ValueError(
            f"{path}: meg.npy shape {meg.shape} does not match trials.tsv ({len(trials)} rows) and "
            f"channels.tsv ({len(channels)} rows); rerun preprocessing for this subject"
        )
    pos = channels[["x", "y"]].to_numpy(np.float32)
    if not np.isfinite(pos).all():
        raise ValueError(f"{path / 'channels.tsv'} has missing sensor positions (x, y)")
    unknown = sorted(set(trials["split"]) - {TRAIN, VAL, *TEST_SPLITS})
    if unknown:
        raise ValueError(f"{path / 'trials.tsv'}: unknown split values {unknown}")
    subject = name or (str(trials["subject"].iloc[0]) if len(trials) else path.name)
    return SubjectData(subject, meg, trials, channels["name"].astype(str).tolist(), pos, info, path)


@dataclass
class Latents:
    """Latents of every image, ``values`` (n_images, dim) or (n_images, tokens, dim)."""

    image_ids: np.ndarray
    values: np.ndarray
    path: Path

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        lookup = pd.Index(self.image_ids)
        idx = lookup.get_indexer(list(image_ids))
        if (idx < 0).any():
            miss = sorted({str(i) for i, j in zip(image_ids, idx, strict=True) if j < 0})[:5]
            raise KeyError(
                f"{self.path}: no latent for image_id {miss}; rerun the latents rule for this backbone"
            )
        return idx


def load_latents(path: Path | str) -> Latents:
    """Read ``{R}/latents/{backbone}/`` (latents.npy, index.tsv)."""
    path = Path(path)
    values = io.load_npy(path / "latents.npy", mmap=True)
    index = io.read_tsv(path / "index.tsv", dtype={"image_id": str})
    if len(index) != len(values) or values.ndim not in (2, 3):
        raise ValueError(f"{path}: latents.npy {values.shape} does not match index.tsv ({len(index)} rows)")
    if index["image_id"].duplicated().any():
        raise ValueError(f"{path / 'index.tsv'} has duplicated image_id values")
    return Latents(index["image_id"].to_numpy(str), values, path)


@dataclass(frozen=True)
class TargetScaler:
    """Per-dimension standardisation of flattened latents, fitted on training images only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, latents: Latents, train_image_ids: Sequence[str], eps: float = 1e-6) -> TargetScaler:
        ids = pd.unique(pd.Series(list(train_image_ids), dtype=str))
        if len(ids) < 2:
            raise ValueError("need at least 2 training images to standardise the targets")
        flat = np.asarray(latents.values[np.sort(latents.rows(ids))], np.float64).reshape(len(ids), -1)
        std = flat.std(axis=0)
        return cls(flat.mean(axis=0).astype(np.float32), np.maximum(std, eps).astype(np.float32))

    def transform(self, values: np.ndarray) -> np.ndarray:
        flat = np.asarray(values, np.float32).reshape(len(values), -1)
        return (flat - self.mean) / self.std


def check_no_leakage(trials: pd.DataFrame, where: str = "trials") -> None:
    """Raise :class:`LeakageError` if a test image or test concept is among train/val trials."""
    fit = trials[trials["split"].isin([TRAIN, VAL])]
    test = trials[trials["split"].isin(TEST_SPLITS)]
    shared_ids = sorted(set(fit["image_id"]) & set(test["image_id"]))
    shared_concepts = sorted(set(fit["concept"]) & set(test["concept"]))
    if shared_ids or shared_concepts:
        raise LeakageError(
            f"{where}: test images {shared_ids[:5]} / concepts {shared_concepts[:5]} in train/val rows; "
            "fix the split in preprocessing (test concepts must leave training)"
        )
