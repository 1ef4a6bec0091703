"""Human-made image features (the paper's colour histogram, HOG, local binary patterns) + raw pixels."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from megdecode.latents.registry import LatentKind, LatentResult, register_kind
from megdecode.latents.stimuli import Stimuli

log = logging.getLogger(__name__)

FEATURES = ("colour_histogram", "hog", "lbp", "pixels")
FEATURE_LABELS = {"colour_histogram": "colour histogram", "hog": "HOG", "lbp": "LBP", "pixels": "pixels"}


def colour_histogram(rgb: np.ndarray, bins: int = 4) -> np.ndarray:
    """Joint RGB histogram (``bins`` per channel, ``bins**3`` values) normalised to sum 1.

    Bin index is ``(r * bins + g) * bins + b`` with each channel's bin ``value * bins // 256``.
    """
    q = (rgb.astype(np.int64) * bins) // 256
    flat = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hist = np.bincount(flat.ravel(), minlength=bins**3).astype(np.float64)
    return hist / hist.sum()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1] (ITU-R 601 weights, as scikit-image's rgb2gray)."""
    from skimage.color import rgb2gray

    return rgb2gray(rgb.astype(np.float64) / 255.0)


def hog_features(
    gray: np.ndarray, orientations: int = 9, pixels_per_cell: int = 16, cells_per_block: int = 2
):
    """Histogram of oriented gradients (scikit-image, L2-Hys block norm), flattened."""
    from skimage.feature import hog

    return hog(
        gray,
        orientations=orientations,
        pixels_per_cell=(pixels_per_cell, pixels_per_cell),
        cells_per_block=(cells_per_block, cells_per_block),
        block_norm="L2-Hys",
        feature_vector=True,
    )


def lbp_histogram(gray: np.ndarray, points: int = 8, radius: float = 1.0) -> np.ndarray:
    """Histogram of rotation-invariant uniform local binary patterns (``points + 2`` bins, sum 1)."""
    from skimage.feature import local_binary_pattern

    codes = local_binary_pattern(np.round(gray * 255).astype(np.uint8), points, radius, method="uniform")
    hist = np.bincount(codes.astype(np.int64).ravel(), minlength=points + 2).astype(np.float64)
    return hist / hist.sum()


def downsampled_pixels(rgb: np.ndarray, size: int = 16) -> np.ndarray:
    """RGB pixels of the image resized to ``size`` x ``size``, in [0, 1], flattened."""
    from PIL import Image

    small = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)
    return (np.asarray(small, dtype=np.float64) / 255.0).ravel()


@dataclass
class HandcraftedOptions:
    """Options of the ``handcrafted`` kind (see backbones.schema.yaml)."""

    features: list[str] = field(default_factory=lambda: ["colour_histogram", "hog", "lbp"])
    image_size: int = 64
    colour_bins: int = 4
    hog_orientations: int = 9
    hog_pixels_per_cell: int = 16
    hog_cells_per_block: int = 2
    lbp_points: int = 8
    lbp_radius: float = 1.0
    pixels_size: int = 16
    block_norm: str = "l2"

    def __post_init__(self) -> None:
        bad = [f for f in self.features if f not in FEATURES]
        if bad or not self.features:
            raise ValueError(
                f"handcrafted features must be a non-empty subset of {FEATURES}, got {self.features}"
            )
        if self.block_norm not in ("l2", "none"):
            raise ValueError(f"handcrafted block_norm must be 'l2' or 'none', got {self.block_norm!r}")


def handcrafted_vector(rgb: np.ndarray, opts: HandcraftedOptions) -> np.ndarray:
    """Concatenate the selected feature blocks of one uint8 RGB image (each block L2-normalised if asked)."""
    gray = to_gray(rgb) if {"hog", "lbp"} & set(opts.features) else None
    blocks = []
    for name in opts.features:
        if name == "colour_histogram":
            block = colour_histogram(rgb, opts.colour_bins)
        elif name == "hog":
            block = hog_features(
                gray, opts.hog_orientations, opts.hog_pixels_per_cell, opts.hog_cells_per_block
            )
        elif name == "lbp":
            block = lbp_histogram(gray, opts.lbp_points, opts.lbp_radius)
        else:
            block = downsampled_pixels(rgb, opts.pixels_size)
        if opts.block_norm == "l2":
            norm = np.linalg.norm(block)
            block = block / norm if norm > 0 else block
        blocks.append(np.asarray(block, dtype=np.float64))
    return np.concatenate(blocks)


@register_kind("handcrafted")
class Handcrafted(LatentKind):
    """Colour histogram / HOG / LBP / downsampled pixels, concatenated in the configured order."""

    Options = HandcraftedOptions

    def default_label(self) -> str:
        label = " + ".join(FEATURE_LABELS[f] for f in self.options.features)
        return label[0].upper() + label[1:]

    def compute(self, stimuli: Stimuli, threads: int = 1, weights_dir: str | None = None) -> LatentResult:
        opts: HandcraftedOptions = self.options
        rows = []
        for i in tqdm(range(len(stimuli)), desc=f"latents {self.name}", unit="img", mininterval=2):
            rows.append(handcrafted_vector(stimuli.load_rgb(i, opts.image_size), opts))
        latents = np.stack(rows).astype(np.float32)
        provenance = {
            "model": "scikit-image",
            "revision": None,
            "output": "+".join(opts.features),
            "layer": None,
            "preprocessing": {"resize": [opts.image_size, opts.image_size], "resample": "bilinear"},
            "options": asdict(opts),
        }
        return LatentResult(latents, provenance)
