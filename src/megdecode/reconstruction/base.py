"""What every generator shares: predicted latents in, images out, and the stimulus images.

A generator turns latents predicted from MEG (one :class:`Predicted` per backbone it needs) into RGB images
(``uint8``, ``(n, H, W, 3)``), in the order of the primary backbone's image ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from megdecode.artifacts.predictions import read_predictions
from megdecode.artifacts.stimuli import read_image

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


class Generator(Protocol):
    """The one interface of every generator (decoder, retrieval, versatile_diffusion)."""

    name: str

    def generate(self, predictions: Mapping[str, Predicted]) -> np.ndarray:
        """Images ``uint8 (n, H, W, 3)`` for the predictions, in the primary backbone's image-id order."""
        ...


def load_predictions(path: Path | str, split: str) -> Predicted:
    """The regression head's ``split`` predictions of a ``predictions.npz``, de-standardised."""
    preds = read_predictions(path)
    latents = preds.destandardised(split)  # a missing split is an error naming the file
    return Predicted(
        image_id=preds.image_ids[split],
        latents=latents,
        target_mean=preds.target_mean,
        target_std=preds.target_std,
    )


def load_image(path: Path | str, size: int) -> np.ndarray:
    """One RGB image, centre-cropped to a square and resized to ``size`` (uint8, (size, size, 3))."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"stimulus image not found: {path}; check study.stimuli_root / the stimuli stage"
        )
    try:
        img = read_image(path)
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
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
