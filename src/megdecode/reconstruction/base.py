"""What every generator shares: predicted latents in, images out, and the readers of the stage's inputs.

A generator turns latents predicted from MEG (one :class:`Predicted` per backbone it needs) into RGB images
(``uint8``, ``(n, H, W, 3)``), in the order of the primary backbone's image ids.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from megdecode.io import load_npy, load_npz, read_json, read_tsv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predicted:
    """Latents predicted for one split, de-standardised to the backbone's own latent space."""

    image_id: np.ndarray  # (n,) str
    latents: np.ndarray  # (n, flat dim) float32
    target_mean: np.ndarray  # (flat dim,)
    target_std: np.ndarray  # (flat dim,)

    def standardised(self) -> np.ndarray:
        """The predictions in the standardised target space the brain module was trained in."""
        return (self.latents - self.target_mean) / self.target_std


@dataclass(frozen=True)
class LatentTable:
    """A backbone's true latents: one row per image id, flattened, plus the original per-image shape."""

    image_id: np.ndarray
    latents: np.ndarray  # (n, flat dim)
    shape: tuple[int, ...]  # per-image shape, e.g. (257, 768)

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        """Latents of ``image_ids`` in that order; a missing id is an error naming it."""
        where = {str(i): k for k, i in enumerate(self.image_id)}
        missing = [i for i in image_ids if str(i) not in where]
        if missing:
            raise KeyError(f"{len(missing)} image ids have no latent (first: {missing[0]!r})")
        return self.latents[[where[str(i)] for i in image_ids]]


class Generator(Protocol):
    """The one interface of every generator (decoder, retrieval, versatile_diffusion)."""

    name: str

    def generate(self, predictions: Mapping[str, Predicted]) -> np.ndarray:
        """Images ``uint8 (n, H, W, 3)`` for the predictions, in the primary backbone's image-id order."""
        ...


def derive_seed(seed: int, *labels: str) -> int:
    """A stable 31-bit seed from the config seed and wildcard labels (same inputs, same seed)."""
    return (int(seed) * 1_000_003 + zlib.crc32("/".join(labels).encode())) % (2**31 - 1)


def load_predictions(path: Path | str, split: str = "test_small") -> Predicted:
    """Read ``{split}_pred`` / ``{split}_image_id`` of a ``predictions.npz`` and de-standardise them."""
    data = load_npz(path)
    needed = [f"{split}_pred", f"{split}_image_id", "target_mean", "target_std"]
    missing = [k for k in needed if k not in data]
    if missing:
        raise KeyError(
            f"{path}: missing arrays {missing} (see docs/ARCHITECTURE.md, predictions.npz); rerun training"
        )
    pred = data[f"{split}_pred"].astype(np.float32).reshape(len(data[f"{split}_pred"]), -1)
    mean = data["target_mean"].astype(np.float32).reshape(-1)
    std = data["target_std"].astype(np.float32).reshape(-1)
    if pred.shape[1] != mean.shape[0] or std.shape != mean.shape:
        raise ValueError(
            f"{path}: prediction dim {pred.shape[1]} does not match target_mean/std {mean.shape}"
        )
    return Predicted(
        image_id=data[f"{split}_image_id"].astype(str),
        latents=pred * std + mean,
        target_mean=mean,
        target_std=std,
    )


def load_latents(latent_dir: Path | str) -> LatentTable:
    """Read ``latents.npy`` + ``index.tsv`` of one backbone (contract of the latents stage)."""
    latent_dir = Path(latent_dir)
    array = load_npy(latent_dir / "latents.npy")
    index = read_tsv(latent_dir / "index.tsv", dtype={"image_id": str})
    if len(index) != len(array):
        raise ValueError(f"{latent_dir}: index.tsv has {len(index)} rows but latents.npy has {len(array)}")
    return LatentTable(
        image_id=index["image_id"].to_numpy(dtype=str),
        latents=np.asarray(array, dtype=np.float32).reshape(len(array), -1),
        shape=tuple(array.shape[1:]),
    )


def latent_metadata(latent_dir: Path | str) -> dict:
    """The backbone's ``latents.json`` sidecar (kind, model id, shape...)."""
    return read_json(Path(latent_dir) / "latents.json")


def read_stimuli(path: Path | str) -> pd.DataFrame:
    """The stimulus table, indexed by ``image_id``; columns checked against the contract."""
    table = read_tsv(path, dtype={"image_id": str, "file": str, "concept": str})
    needed = {"image_id", "file", "role", "concept_split"}
    if missing := needed - set(table.columns):
        raise ValueError(f"{path}: missing columns {sorted(missing)}; rerun the stimuli/simulate stage")
    return table.set_index("image_id", drop=False)


def train_image_ids(stimuli: pd.DataFrame) -> list[str]:
    """Images a generator may learn from or retrieve: ``exp`` images of TRAIN concepts only."""
    keep = (stimuli["role"] == "exp") & (stimuli["concept_split"] == "train")
    return stimuli.loc[keep, "image_id"].astype(str).tolist()


def load_image(path: Path | str, size: int) -> np.ndarray:
    """One RGB image, centre-cropped to a square and resized to ``size`` (uint8, (size, size, 3))."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"stimulus image not found: {path}; check study.stimuli_root / the stimuli stage"
        )
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize(
                (size, size), Image.Resampling.BICUBIC
            )
            return np.asarray(img, dtype=np.uint8)
    except OSError as err:
        raise OSError(f"cannot read stimulus image {path} ({err}); replace or re-render it") from err


def load_images(
    stimuli: pd.DataFrame, images_root: Path | str, image_ids: Sequence[str], size: int
) -> np.ndarray:
    """Stimulus images of ``image_ids`` (uint8, (n, size, size, 3))."""
    missing = [i for i in image_ids if i not in stimuli.index]
    if missing:
        raise KeyError(f"{len(missing)} image ids are not in the stimulus table (first: {missing[0]!r})")
    root = Path(images_root)
    return np.stack([load_image(root / stimuli.loc[i, "file"], size) for i in image_ids])


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``uint8 (n, H, W, 3)`` images to ``size`` x ``size`` (bicubic); no-op when already that size."""
    from PIL import Image

    if images.shape[1] == size and images.shape[2] == size:
        return images
    return np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)) for im in images]
    )


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8 (clipped, rounded)."""
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
