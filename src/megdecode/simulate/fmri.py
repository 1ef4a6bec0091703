"""The simulated 7T fMRI study: NSD-like single-trial betas for the MEG study's own images and concepts.

Two voxel populations with a known mixture of tunings (docs/simulation.md, "Simulated 7T fMRI"):

- early visual voxels (``roi`` ``EVC``): a population receptive field (pRF; isotropic Gaussian, size growing
  with eccentricity) over a local feature map of the rendered image (luminance contrast, red-green and
  blue-yellow opponency; each voxel a random mixture), compressed by a power law (compressive spatial
  summation);
- higher visual voxels (``roi`` ``HVC``): a random linear read-out of the concept's attributes (one-hot shape,
  colour, texture: the MEG simulation's semantic code).

Each voxel's signal is ``(1 - cross) * own + cross * other`` (both standardised over images), so
``cross_tuning`` is the known share of the other population's code. Single-trial betas add noise with a
per-voxel signal-to-noise ratio (log-normal), a component shared by all voxels of a trial (global signal),
and per-session offsets and gains (what per-session z-scoring removes). Each training image is shown
1..``max_repetitions`` times, each test image ``max_repetitions`` times, spread over sessions at random. The
test images are the stimuli table's ``test`` images (the MEG study's small test set); other images of test
concepts are not shown. The ground truth (pRFs, mixture weights, SNRs, attribute weights) is written beside
the betas.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from megdecode import io
from megdecode.artifacts.fmri import TEST, TRAIN, FmriSubject, assign_validation
from megdecode.artifacts.stimuli import read_image, read_stimuli
from megdecode.config import dataclass_from_section
from megdecode.seeds import derive_rng
from megdecode.simulate.stimuli import ATTRIBUTES

log = logging.getLogger(__name__)

EARLY, HIGH = "EVC", "HVC"
FEATURE_CHANNELS = ("luminance_contrast", "red_green", "blue_yellow")


@dataclass(frozen=True)
class FmriSimParams:
    """The ``fmri.simulation`` config section (defaults and rationale in the schema and
    docs/simulation.md)."""

    n_early_voxels: int
    n_high_voxels: int
    n_sessions: int
    max_repetitions: int
    feature_size: int
    prf_size: list[float]
    css_exponent: float
    cross_tuning: float
    snr_median: float
    snr_spread: float
    global_noise: float
    session_offset: float
    session_gain: float
    val_fraction: float

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FmriSimParams:
        return dataclass_from_section(cls, values, "fmri.simulation")


def feature_maps(img: np.ndarray, size: int) -> np.ndarray:
    """(channels, size, size) local features of one RGB uint8 image: |luminance - mean|, |R - G|, |B - Y|."""
    x = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.float64) / 255.0
    lum = x @ np.array([0.299, 0.587, 0.114])
    red_green = np.abs(x[..., 0] - x[..., 1])
    blue_yellow = np.abs(x[..., 2] - 0.5 * (x[..., 0] + x[..., 1]))
    return np.stack([np.abs(lum - lum.mean()), red_green, blue_yellow])


def _standardise(a: np.ndarray) -> np.ndarray:
    """Columns to mean 0, SD 1 over rows (images); constant columns to 0."""
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _prfs(n: int, size_range: list[float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """pRF centres (image coordinates in [-1, 1], y up), sizes growing with eccentricity, channel weights."""
    ecc = 0.9 * np.sqrt(
        rng.uniform(0, 1, n)
    )  # uniform over the disc: more voxels per unit area near the fovea
    angle = rng.uniform(0, 2 * np.pi, n)
    lo, hi = size_range
    return {
        "x": ecc * np.cos(angle),
        "y": ecc * np.sin(angle),
        "sigma": lo + (hi - lo) * ecc / 0.9,
        "channel_weights": rng.dirichlet(np.ones(len(FEATURE_CHANNELS)), n),
    }


def early_signal(maps: np.ndarray, prf: Mapping[str, np.ndarray], exponent: float) -> np.ndarray:
    """(images, voxels): each voxel's pRF-weighted feature drive, raised to ``exponent`` (CSS)."""
    size = maps.shape[-1]
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    xx, yy = np.meshgrid(coords, -coords)
    g = np.exp(
        -((xx[None] - prf["x"][:, None, None]) ** 2 + (yy[None] - prf["y"][:, None, None]) ** 2)
        / (2 * prf["sigma"][:, None, None] ** 2)
    )
    g /= g.sum(axis=(1, 2), keepdims=True)
    drive = np.einsum("ichw,vhw->icv", maps, g)  # (images, channels, voxels)
    mixed = np.einsum("icv,vc->iv", drive, prf["channel_weights"])
    return np.power(np.maximum(mixed, 0.0), exponent)


def attribute_design(stimuli: pd.DataFrame, image_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(images, attribute values) one-hot of each image's shape, colour and texture."""
    rows = stimuli.loc[image_ids]
    blocks, names = [], []
    for attribute in ATTRIBUTES:
        values = sorted(stimuli[attribute].dropna().astype(str).unique())
        blocks.append(
            (rows[attribute].astype(str).to_numpy()[:, None] == np.array(values)[None]).astype(float)
        )
        names += [f"{attribute}={v}" for v in values]
    return np.concatenate(blocks, axis=1), names


@dataclass(frozen=True)
class VoxelCode:
    """The noiseless code of a set of images: ``signal`` (images, voxels; early voxels first, each column
    standardised over the images), the voxels' single-trial ``snr``, the early voxels' pRFs and the high
    voxels' attribute read-out weights."""

    signal: np.ndarray
    snr: np.ndarray
    prf: dict[str, np.ndarray]
    readout: np.ndarray


def voxel_code(maps: np.ndarray, onehot: np.ndarray, p: FmriSimParams, rng: np.random.Generator) -> VoxelCode:
    """Draw one subject's voxels (pRFs, attribute read-out, the known mixture, SNRs) and their signal for the
    images of ``maps`` (:func:`feature_maps`) and ``onehot`` (:func:`attribute_design`), in that order."""
    prf = _prfs(p.n_early_voxels, p.prf_size, rng)
    low = _standardise(early_signal(maps, prf, p.css_exponent))
    readout = rng.normal(size=(onehot.shape[1], p.n_high_voxels))
    high = _standardise(onehot @ readout)
    # the known mixture: each population carries a share ``cross_tuning`` of the other's code
    low_for_high = _standardise(low[:, rng.integers(0, p.n_early_voxels, p.n_high_voxels)])
    high_for_low = _standardise(high[:, rng.integers(0, p.n_high_voxels, p.n_early_voxels)])
    c = p.cross_tuning
    signal = np.concatenate([(1 - c) * low + c * high_for_low, (1 - c) * high + c * low_for_high], axis=1)
    signal = _standardise(signal)
    snr = p.snr_median * np.exp(p.snr_spread * rng.normal(size=signal.shape[1]))
    return VoxelCode(signal, snr, prf, readout)


def images_voxel_code(
    stimuli: pd.DataFrame,
    image_ids: np.ndarray,
    images_root: Path | str,
    p: FmriSimParams,
    rng: np.random.Generator,
) -> tuple[VoxelCode, list[str]]:
    """:func:`voxel_code` of the images ``image_ids`` (their files under ``images_root``), with the names of
    the attribute values of its read-out rows."""
    maps = np.stack(
        [
            feature_maps(
                np.asarray(read_image(Path(images_root) / stimuli.loc[i, "file"])),
                p.feature_size,
            )
            for i in image_ids
        ]
    )
    onehot, attribute_names = attribute_design(stimuli, image_ids)
    return voxel_code(maps, onehot, p, rng), attribute_names


def design(
    stimuli: pd.DataFrame, p: FmriSimParams, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """NSD-like trial list (image, repetition, session, split) and the images shown (sorted)."""
    train_ids = stimuli.loc[(stimuli["role"] == "exp") & (stimuli["concept_split"] == "train"), "image_id"]
    test_ids = stimuli.loc[stimuli["role"] == "test", "image_id"]
    train_ids, test_ids = np.sort(train_ids.to_numpy(str)), np.sort(test_ids.to_numpy(str))
    reps = np.concatenate(
        [rng.integers(1, p.max_repetitions + 1, len(train_ids)), np.full(len(test_ids), p.max_repetitions)]
    )
    shown = np.concatenate([train_ids, test_ids])
    rows = []
    for image, n, split in zip(shown, reps, [TRAIN] * len(train_ids) + [TEST] * len(test_ids), strict=True):
        for r in range(int(n)):
            rows.append({"image_id": image, "repetition": r + 1, "split": split})
    trials = pd.DataFrame(rows)
    trials = trials.iloc[rng.permutation(len(trials))].reset_index(drop=True)
    # sessions in presentation order; a later repetition of an image never comes before an earlier one
    trials["repetition"] = trials.groupby("image_id").cumcount() + 1
    n_sessions = p.n_sessions
    trials["session"] = [f"{1 + i * n_sessions // len(trials):02d}" for i in range(len(trials))]
    trials["concept"] = stimuli.loc[trials["image_id"], "concept"].astype(str).to_numpy()
    return trials, np.sort(shown)


def simulate_fmri_subject(
    stimuli_table: Path | str,
    images_root: Path | str,
    subject: str,
    cfg: Mapping[str, Any],
    seed: int,
) -> tuple[FmriSubject, dict[str, Any]]:
    """One simulated subject (its :class:`FmriSubject`) and the ground truth that generated it."""
    p = FmriSimParams.from_dict(cfg)
    rng = derive_rng(int(seed), "fmri", subject)
    stimuli = read_stimuli(stimuli_table)
    missing = [a for a in ATTRIBUTES if a not in stimuli.columns]
    if missing:
        raise ValueError(f"{stimuli_table} lacks attribute columns {missing}; rerun simulate_stimuli")
    trials, shown = design(stimuli, p, rng)
    # signal per image: early (pRF over feature maps) and high (attribute read-out), standardised over images
    code, attribute_names = images_voxel_code(stimuli, shown, images_root, p, rng)
    signal, snr, prf, readout, c = code.signal, code.snr, code.prf, code.readout, p.cross_tuning
    n_vox = signal.shape[1]
    row = np.searchsorted(shown, trials["image_id"].to_numpy(str))
    n_trials = len(trials)
    noise = np.sqrt(1 - p.global_noise) * rng.normal(size=(n_trials, n_vox)) + np.sqrt(
        p.global_noise
    ) * rng.normal(size=(n_trials, 1))
    betas = signal[row] * snr + noise
    sessions = trials["session"].to_numpy(str)
    for label in np.unique(sessions):
        rows = sessions == label
        gain = np.exp(p.session_gain * rng.normal(size=n_vox))
        betas[rows] = betas[rows] * gain + p.session_offset * rng.normal(size=n_vox)
    trials = assign_validation(trials, p.val_fraction, rng)
    trials.insert(0, "subject", subject)
    coords, roi = _voxel_layout(prf, p.n_high_voxels, rng)
    info = {"source": "simulated", "units": "simulated percent signal change", "n_images": int(len(shown))}
    fmri = FmriSubject(subject, betas.astype(np.float32), trials, coords, roi, info)
    truth = {
        "subject": subject,
        "seed": int(seed),
        "params": {k: getattr(p, k) for k in p.__dataclass_fields__},
        "voxels": {
            "roi": roi.tolist(),
            "snr": snr.round(6).tolist(),
            "share_low_level": [1 - c] * p.n_early_voxels + [c] * p.n_high_voxels,
            "share_high_level": [c] * p.n_early_voxels + [1 - c] * p.n_high_voxels,
        },
        "prf": {k: np.asarray(v).round(6).tolist() for k, v in prf.items()},
        "feature_channels": list(FEATURE_CHANNELS),
        "attribute_readout": {"values": attribute_names, "weights": readout.round(6).tolist()},
        "noise_ceiling_single_trial_median": float(np.median(snr**2 / (snr**2 + 1))),
        "noise_ceiling_3_trials_median": float(np.median(snr**2 / (snr**2 + 1 / 3))),
    }
    return fmri, truth


def _voxel_layout(
    prf: Mapping[str, np.ndarray], n_high: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Integer voxel coordinates: early voxels by visual field (hemisphere from the pRF's side, posterior-to-
    anterior by log eccentricity, dorsal/ventral by polar angle), higher voxels anterior to them; roi
    labels."""
    ecc = np.hypot(prf["x"], prf["y"])
    x = np.where(prf["x"] < 0, 1, -1) * (10 + np.round(6 * np.abs(prf["x"])))
    y = np.round(4 * np.log1p(10 * ecc))
    z = np.round(8 * prf["y"])
    early = np.stack([x, y, z], axis=1)
    high = np.stack(
        [
            rng.choice([-1, 1], n_high) * rng.integers(12, 24, n_high),
            rng.integers(14, 30, n_high),
            rng.integers(-8, 0, n_high),
        ],
        axis=1,
    )
    coords = np.concatenate([early, high]).astype(np.int64)
    roi = np.array([EARLY] * len(early) + [HIGH] * n_high)
    return coords, roi


def write_ground_truth(truth: Mapping[str, Any], path: Path | str) -> None:
    io.write_json(dict(truth), path)
