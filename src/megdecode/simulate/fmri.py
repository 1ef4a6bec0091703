"""The simulated 7T study: NSD-like single-trial betas for the MEG study's own images and concepts.

Calibrated to the Natural Scenes Dataset (docs/fmri.md, "The simulated 7T study, calibrated to NSD"; every
default in the schema ``fmri.simulation`` with its source). One subject's world (:func:`voxel_code`, drawn
from the subject's own generators, so the ceiling job can rebuild it) is a latent representation of each image
read out by every voxel:

- **early units** (``n_early_units``): each a population receptive field (isotropic Gaussian, size growing
  with eccentricity) over local feature maps of the rendered image (luminance contrast, red-green and
  blue-yellow opponency; a random mixture per unit), compressed by a power law (compressive spatial
  summation). An early visual voxel (``roi`` ``EVC``) pools the units near its own pRF centre.
- **a higher feature space** (``n_features`` dimensions) that each higher visual voxel (``roi`` ``HVC``) reads
  with random weights: an image is the sum of random embeddings of its concept's attribute values (shape,
  colour, texture; graded, not one-hot; share ``semantic_share``), its concept's own random code
  (``concept_share``) and a random projection of 8 mid-level statistics of its pixels (the rest). A decoder
  trained on other concepts can learn the embeddings and the projection, never a held-out concept's own code.
- the known mixture: each voxel reads ``cross_tuning`` of the other population.

A single trial is ``gain * (signal + neural noise) + measurement noise``: the neural noise (SD
``neural_noise`` per latent dimension) is read out by the same weights as the signal (it lives where the
signal lives: no averaging over voxels removes it); the measurement noise has a component common to all voxels
(``global_noise``), ``n_noise_components`` spatially smooth components over the voxel layout
(``smooth_noise``) and an independent rest. The gains follow from each voxel's drawn ncsnr (log-normal;
medians per population). Per-session, per-voxel offsets and gains come last (what per-session z-scoring
removes).

Every image statistic (standardisation of features and signals) comes from the ``exp`` images of training
concepts only. Each training image is shown 1..``max_repetitions`` times, each test image ``max_repetitions``
times, spread over sessions at random. The test images are the stimuli table's ``test`` images (the MEG
study's small test set); other images of test concepts are not shown.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
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
from megdecode.simulate.stimuli import ATTRIBUTES, LOW_LEVEL_FEATURES, image_features

log = logging.getLogger(__name__)

EARLY, HIGH = "EVC", "HVC"
FEATURE_CHANNELS = ("luminance_contrast", "red_green", "blue_yellow")
SECTION = "fmri.simulation"
#: A voxel's neural noise may take at most this share of its noise variance (a drawn ncsnr above what the
#: neural noise allows is lowered to it; the number of such voxels is in the ground truth).
MAX_NEURAL_SHARE = 0.95


@dataclass(frozen=True)
class FmriSimParams:
    """The ``fmri.simulation`` config section (defaults, sources and rationale in the schema and
    docs/fmri.md)."""

    n_early_voxels: int
    n_high_voxels: int
    n_sessions: int
    max_repetitions: int
    feature_size: int
    prf_size: list[float]
    css_exponent: float
    cross_tuning: float
    n_early_units: int
    unit_spread: float
    n_features: int
    semantic_share: float
    concept_share: float
    snr_median_early: float
    snr_median_high: float
    snr_spread: float
    neural_noise: float
    global_noise: float
    smooth_noise: float
    n_noise_components: int
    session_offset: float
    session_gain: float
    val_fraction: float

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FmriSimParams:
        p = dataclass_from_section(cls, values, SECTION)
        if p.semantic_share + p.concept_share > 1:
            raise ValueError(
                f"{SECTION}: semantic_share + concept_share = {p.semantic_share + p.concept_share:g} > 1 "
                "(the rest is the image statistics' share); lower one of them"
            )
        if p.global_noise + p.smooth_noise >= 1:
            raise ValueError(
                f"{SECTION}: global_noise + smooth_noise must stay below 1 (the rest of the measurement "
                "noise is independent); lower one of them"
            )
        return p

    @property
    def image_share(self) -> float:
        return 1.0 - self.semantic_share - self.concept_share

    @property
    def n_voxels(self) -> int:
        return self.n_early_voxels + self.n_high_voxels


def feature_maps(img: np.ndarray, size: int) -> np.ndarray:
    """(channels, size, size) local features of one RGB uint8 image: |luminance - mean|, |R - G|, |B - Y|."""
    x = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.float64) / 255.0
    lum = x @ np.array([0.299, 0.587, 0.114])
    red_green = np.abs(x[..., 0] - x[..., 1])
    blue_yellow = np.abs(x[..., 2] - 0.5 * (x[..., 0] + x[..., 1]))
    return np.stack([np.abs(lum - lum.mean()), red_green, blue_yellow])


def _prfs(n: int, size_range: Sequence[float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """pRF centres (image coordinates in [-1, 1], y up), sizes growing with eccentricity, channel weights."""
    ecc = 0.9 * np.sqrt(rng.uniform(0, 1, n))  # uniform over the disc: more voxels per area near the fovea
    angle = rng.uniform(0, 2 * np.pi, n)
    lo, hi = size_range
    return {
        "x": ecc * np.cos(angle),
        "y": ecc * np.sin(angle),
        "sigma": lo + (hi - lo) * ecc / 0.9,
        "channel_weights": rng.dirichlet(np.ones(len(FEATURE_CHANNELS)), n),
    }


def prf_weights(prf: Mapping[str, np.ndarray], size: int) -> np.ndarray:
    """(voxels, size, size) each pRF's Gaussian on a ``size`` x ``size`` grid, summing to 1."""
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    xx, yy = np.meshgrid(coords, -coords)
    g = np.exp(
        -((xx[None] - prf["x"][:, None, None]) ** 2 + (yy[None] - prf["y"][:, None, None]) ** 2)
        / (2 * prf["sigma"][:, None, None] ** 2)
    )
    return g / g.sum(axis=(1, 2), keepdims=True)


def early_signal(maps: np.ndarray, prf: Mapping[str, np.ndarray], exponent: float) -> np.ndarray:
    """(images, voxels): each voxel's pRF-weighted feature drive, raised to ``exponent`` (CSS)."""
    g = prf_weights(prf, maps.shape[-1])
    drive = np.einsum("ichw,vhw->icv", maps, g)  # (images, channels, voxels)
    mixed = np.einsum("icv,vc->iv", drive, prf["channel_weights"])
    return np.power(np.maximum(mixed, 0.0), exponent)


def _affine(values: np.ndarray, fit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and SDs of ``values[fit_rows]`` (constant columns get SD 1)."""
    mean = values[fit_rows].mean(axis=0)
    sd = values[fit_rows].std(axis=0)
    return mean, np.where(sd > 0, sd, 1.0)


@dataclass(frozen=True)
class NoiseModel:
    """Single-trial noise ``loadings @ z + sqrt(white) * e`` (z, e standard normal): unit variance per
    voxel, covariance ``loadings @ loadings.T + white * I``."""

    loadings: np.ndarray  # (voxels, components) float64
    white: float

    @property
    def n_voxels(self) -> int:
        return int(self.loadings.shape[0])

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, voxels) noise of ``n`` trials from ``rng`` (components first, then the independent part)."""
        z = rng.standard_normal((n, self.loadings.shape[1]))
        return z @ self.loadings.T + np.sqrt(self.white) * rng.standard_normal((n, self.n_voxels))


@dataclass(frozen=True)
class VoxelCode:
    """One subject's generative model for a set of images (rows of ``image_ids``, sorted).

    ``signal = learnable + concept_codes[concept_index] @ concept_loading.T``: each column standardised over
    the training-concept images; ``learnable`` is what a decoder trained on other images can learn (the
    pRF drive, the attribute embeddings, the image statistics), ``concept_loading`` (voxels, n_features)
    how the image's concept's own code reaches each voxel. A single trial is ``snr * signal + noise``
    (:class:`NoiseModel`: the neural noise scaled by the gain, then the measurement noise) before the
    session's gain and offset."""

    image_ids: np.ndarray  # (images,) str, sorted
    concepts: np.ndarray  # (images,) str
    concept_names: np.ndarray  # (concepts,) str
    concept_codes: np.ndarray  # (concepts, n_features)
    concept_index: np.ndarray  # (images,) row of concept_codes
    learnable: np.ndarray  # (images, voxels)
    concept_loading: np.ndarray  # (voxels, n_features)
    readout: np.ndarray  # (voxels, latent) how each voxel reads the latent representation (signal SD 1)
    ncsnr_target: np.ndarray  # (voxels,) the drawn ncsnr
    measurement: np.ndarray  # (voxels, components) the measurement noise's correlated loadings
    measurement_white: float  # the measurement noise's independent variance
    snr: np.ndarray  # (voxels,) the voxel's gain: the signal's SD in a single trial
    ncsnr: np.ndarray  # (voxels,) signal SD / noise SD of a single trial (NSD's ncsnr)
    noise: NoiseModel
    roi: np.ndarray  # (voxels,) EARLY / HIGH
    coords: np.ndarray  # (voxels, 3) int
    prf: dict[str, np.ndarray]
    truth: dict[str, Any]

    @property
    def signal(self) -> np.ndarray:
        """(images, voxels) the noiseless standardised signal."""
        return self.signal_of(np.arange(len(self.image_ids)))

    def signal_of(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), voxels) the noiseless standardised signal of these rows (float64)."""
        codes = self.concept_codes[self.concept_index[rows]]
        return self.learnable[rows].astype(np.float64) + codes @ self.concept_loading.T

    def with_neural_noise(self, neural_noise: float) -> VoxelCode:
        """This world with neural noise of SD ``neural_noise`` per latent dimension: each voxel's gain g
        solves ncsnr^2 = g^2 / (g^2 neural_noise^2 |A_v|^2 + 1) for its drawn ncsnr (lowered to what the
        neural noise allows, at most :data:`MAX_NEURAL_SHARE` of the noise; the count is in ``truth``)."""
        neural = neural_noise**2 * (self.readout**2).sum(axis=1)  # neural noise variance per unit gain
        feasible = np.minimum(self.ncsnr_target**2, MAX_NEURAL_SHARE / np.maximum(neural, 1e-12))
        gain = np.sqrt(feasible / (1 - feasible * neural))
        loadings = np.concatenate([neural_noise * gain[:, None] * self.readout, self.measurement], axis=1)
        truth = {**self.truth, "ncsnr_lowered": int((feasible < self.ncsnr_target**2).sum())}
        return dataclasses.replace(
            self,
            snr=gain,
            ncsnr=gain / np.sqrt(gain**2 * neural + 1),
            noise=NoiseModel(loadings, self.measurement_white),
            truth=truth,
        )

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        """Row of each image in this code; an unknown image is an error naming it."""
        ids = np.asarray(image_ids).astype(str)
        rows = np.minimum(np.searchsorted(self.image_ids, ids), len(self.image_ids) - 1)
        missing = sorted(set(ids[self.image_ids[rows] != ids]))
        if missing:
            raise ValueError(f"images {missing[:5]} are not in this subject's voxel code")
        return rows


def image_statistics(images: np.ndarray) -> np.ndarray:
    """(images, 8) the mid-level statistics of :data:`~megdecode.simulate.stimuli.LOW_LEVEL_FEATURES`."""
    return np.stack([image_features(im) for im in images])


def _smooth_components(coords: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(voxels, k) random smooth spatial patterns over the voxel layout (long-wavelength cosines, one
    random direction and phase each), each voxel's row scaled to unit norm."""
    if k == 0:
        return np.zeros((len(coords), 0))
    span = np.ptp(coords, axis=0).max() + 1.0
    directions = rng.standard_normal((k, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelength = span * rng.uniform(0.5, 2.0, k)
    phase = rng.uniform(0, 2 * np.pi, k)
    patterns = np.cos(2 * np.pi * (coords @ directions.T) / wavelength + phase)
    return patterns / np.maximum(np.linalg.norm(patterns, axis=1, keepdims=True), 1e-12)


def voxel_code(
    images: np.ndarray,
    image_ids: np.ndarray,
    table: pd.DataFrame,
    p: FmriSimParams,
    subject_key: tuple,
) -> VoxelCode:
    """Draw one subject's world (``subject_key`` seeds it: ``(seed, ..., subject)``) and its code for
    ``images`` (uint8 (n, H, W, 3), rows of the sorted ``image_ids`` of the stimuli ``table``).

    A latent representation ``h`` of each image (early units' CSS pRF responses; the higher feature space)
    is read out by every voxel (``A``: an early voxel pools the units near its pRF centre, a higher voxel
    reads the feature space with random weights, each mixing in ``cross_tuning`` of the other population); the
    neural noise ``A @ e`` (e standard normal, SD ``neural_noise`` per latent dimension) lives where the
    signal lives. Voxel gains turn the drawn ncsnr into ``gain * (signal + neural noise) + measurement
    noise``."""
    rng = derive_rng(*subject_key, "voxels")
    table = table.set_index("image_id", drop=False) if "image_id" in table.columns else table
    rows = table.loc[image_ids]
    fit = ((rows["role"] == "exp") & (rows["concept_split"] == TRAIN)).to_numpy()
    if fit.sum() < 2:
        raise ValueError("the simulated 7T study needs at least 2 exp images of training concepts")
    c, n_early, n_high, d = p.cross_tuning, p.n_early_voxels, p.n_high_voxels, p.n_features

    # early units: CSS pRF responses to the local feature maps (image-computable: learnable)
    units = _prfs(p.n_early_units, p.prf_size, rng)
    maps = np.stack([feature_maps(im, p.feature_size) for im in images])
    h_early = early_signal(maps, units, p.css_exponent)
    h_early = (h_early - h_early[fit].mean(axis=0)) / _affine(h_early, fit)[1]

    # the higher feature space: attribute embeddings + the concept's own code + projected image statistics
    embeddings = {
        a: {v: derive_rng(*subject_key, "embedding", a, v).standard_normal(d) for v in sorted(set(rows[a]))}
        for a in ATTRIBUTES
    }
    values = rows[list(ATTRIBUTES)].to_numpy()
    semantic = np.stack(
        [sum(embeddings[a][v] for a, v in zip(ATTRIBUTES, vals, strict=True)) for vals in values]
    ) / np.sqrt(len(ATTRIBUTES))
    concepts = rows["concept"].astype(str).to_numpy()
    concept_names, concept_index = np.unique(concepts, return_inverse=True)
    concept_codes = np.stack(
        [derive_rng(*subject_key, "concept", n).standard_normal(d) for n in concept_names]
    )
    stats = image_statistics(images)
    stats_mean, stats_sd = _affine(stats, fit)
    projection = rng.standard_normal((len(LOW_LEVEL_FEATURES), d)) / np.sqrt(len(LOW_LEVEL_FEATURES))
    h_learn = np.sqrt(p.semantic_share) * semantic + np.sqrt(p.image_share) * (
        ((stats - stats_mean) / stats_sd) @ projection
    )

    # read-out A (voxels x latent): early voxels pool nearby units, higher voxels read the feature space
    prf = _prfs(n_early, p.prf_size, rng)
    dist2 = (prf["x"][:, None] - units["x"][None]) ** 2 + (prf["y"][:, None] - units["y"][None]) ** 2
    pool = np.exp(-dist2 / (2 * p.unit_spread**2))
    pool /= pool.sum(axis=1, keepdims=True)
    weights = rng.standard_normal((n_high, d)) / np.sqrt(d)
    to_high = rng.integers(0, n_high, n_early)  # the higher voxel each early voxel mixes in
    to_low = rng.integers(0, n_early, n_high)
    readout = np.zeros((n_early + n_high, p.n_early_units + d))
    readout[:n_early, : p.n_early_units] = (1 - c) * pool
    readout[:n_early, p.n_early_units :] = c * weights[to_high]
    readout[n_early:, : p.n_early_units] = c * pool[to_low]
    readout[n_early:, p.n_early_units :] = (1 - c) * weights
    latent_learn = np.concatenate([h_early, h_learn], axis=1)
    latent_concept = np.zeros((len(concept_names), latent_learn.shape[1]))
    latent_concept[:, p.n_early_units :] = np.sqrt(p.concept_share) * concept_codes
    total = (latent_learn + latent_concept[concept_index]) @ readout.T
    mean, sd = _affine(total, fit)
    readout /= sd[:, None]  # every voxel's signal has unit SD over the training-concept images
    learnable = latent_learn @ readout.T - mean
    concept_loading = np.sqrt(p.concept_share) * readout[:, p.n_early_units :]

    # voxel ncsnr drawn log-normal (medians per population); gains and noise follow from neural_noise
    medians = np.r_[np.full(n_early, p.snr_median_early), np.full(n_high, p.snr_median_high)]
    target = medians * np.exp(p.snr_spread * rng.standard_normal(n_early + n_high))
    coords, roi = _voxel_layout(prf, n_high, rng)
    measurement = np.concatenate(
        [
            np.sqrt(p.global_noise) * np.ones((n_early + n_high, 1)),
            np.sqrt(p.smooth_noise) * _smooth_components(coords.astype(float), p.n_noise_components, rng),
        ],
        axis=1,
    )
    truth = {
        "attribute_embeddings": {
            a: {v: e.round(6).tolist() for v, e in vals.items()} for a, vals in embeddings.items()
        },
        "image_statistics": list(LOW_LEVEL_FEATURES),
        "statistics_projection": projection.round(6).tolist(),
    }
    code = VoxelCode(
        image_ids=np.asarray(image_ids).astype(str),
        concepts=concepts,
        concept_names=concept_names,
        concept_codes=concept_codes,
        concept_index=concept_index,
        learnable=learnable.astype(np.float32),
        concept_loading=concept_loading,
        readout=readout,
        ncsnr_target=target,
        measurement=measurement,
        measurement_white=1.0 - p.global_noise - p.smooth_noise,
        snr=np.zeros(0),
        ncsnr=np.zeros(0),
        noise=NoiseModel(np.zeros((0, 0)), 1.0),
        roi=roi,
        coords=coords,
        prf=prf,
        truth=truth,
    )
    return code.with_neural_noise(p.neural_noise)


def load_images(table: pd.DataFrame, image_ids: Sequence[str], images_root: Path | str) -> np.ndarray:
    """uint8 RGB images of ``image_ids`` (the stimuli table's files under ``images_root``)."""
    table = table.set_index("image_id", drop=False) if "image_id" in table.columns else table
    return np.stack([np.asarray(read_image(Path(images_root) / table.loc[i, "file"])) for i in image_ids])


def images_voxel_code(
    stimuli: pd.DataFrame,
    image_ids: np.ndarray,
    images_root: Path | str,
    p: FmriSimParams,
    subject_key: tuple,
) -> VoxelCode:
    """:func:`voxel_code` of the images ``image_ids`` (sorted; their files under ``images_root``)."""
    ids = np.sort(np.asarray(image_ids).astype(str))
    return voxel_code(load_images(stimuli, ids, images_root), ids, stimuli, p, subject_key)


def code_images(stimuli: pd.DataFrame) -> np.ndarray:
    """The images a subject's voxel code covers: every ``exp`` and ``test`` image of the table, sorted (the
    same world for the study, its ceiling and the learning curve)."""
    return np.sort(stimuli.loc[stimuli["role"].isin(["exp", "test"]), "image_id"].to_numpy(str))


def subject_key(seed: int, subject: str) -> tuple:
    """The seed parts of one simulated subject's world."""
    return (int(seed), "fmri", str(subject))


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


@dataclass(frozen=True)
class SessionEffects:
    """Per-session, per-voxel gains and offsets: ``observed = clean * gain + offset``."""

    gain: dict[str, np.ndarray]
    offset: dict[str, np.ndarray]

    @classmethod
    def draw(cls, labels: Sequence[str], n_voxels: int, p: FmriSimParams, key: tuple) -> SessionEffects:
        gain, offset = {}, {}
        for label in labels:
            rng = derive_rng(*key, "session", str(label))
            gain[str(label)] = np.exp(p.session_gain * rng.standard_normal(n_voxels))
            offset[str(label)] = p.session_offset * rng.standard_normal(n_voxels)
        return cls(gain, offset)

    def apply(self, clean: np.ndarray, sessions: np.ndarray) -> np.ndarray:
        out = np.empty_like(clean)
        for label in np.unique(sessions):
            rows = sessions == label
            out[rows] = clean[rows] * self.gain[label] + self.offset[label]
        return out

    def remove(self, betas: np.ndarray, sessions: np.ndarray) -> np.ndarray:
        out = np.empty(betas.shape, np.float64)
        for label in np.unique(sessions):
            rows = sessions == label
            out[rows] = (betas[rows] - self.offset[label]) / self.gain[label]
        return out


def noise_ceiling(snr: np.ndarray, n_trials: int) -> np.ndarray:
    """NSD's noise ceiling (% of variance) of the average of ``n_trials``: 100 ncsnr^2 / (ncsnr^2 + 1/n)."""
    return 100.0 * snr**2 / (snr**2 + 1.0 / n_trials)


@dataclass(frozen=True)
class SimulatedSubject:
    """One simulated subject: its fMRI files' content, the world that generated them, its session effects."""

    fmri: FmriSubject
    code: VoxelCode
    sessions: SessionEffects
    params: FmriSimParams


def simulate_subject(
    stimuli_table: Path | str,
    images_root: Path | str,
    subject: str,
    cfg: Mapping[str, Any],
    seed: int,
) -> SimulatedSubject:
    """Draw one subject's world, design and single-trial betas (deterministic in seed and subject)."""
    p = FmriSimParams.from_dict(cfg)
    key = subject_key(seed, subject)
    stimuli = read_stimuli(stimuli_table)
    missing = [a for a in ATTRIBUTES if a not in stimuli.columns]
    if missing:
        raise ValueError(f"{stimuli_table} lacks attribute columns {missing}; rerun simulate_stimuli")
    trials, shown = design(stimuli, p, derive_rng(*key, "design"))
    code = images_voxel_code(stimuli, code_images(stimuli), images_root, p, key)
    rows = code.rows(trials["image_id"].to_numpy(str))
    betas = code.signal_of(rows) * code.snr + code.noise.draw(len(trials), derive_rng(*key, "noise"))
    sessions = trials["session"].to_numpy(str)
    effects = SessionEffects.draw(np.unique(sessions), p.n_voxels, p, key)
    betas = effects.apply(betas, sessions)
    trials = assign_validation(trials, p.val_fraction, derive_rng(*key, "validation"))
    trials.insert(0, "subject", subject)
    info = {"source": "simulated", "units": "simulated percent signal change", "n_images": int(len(shown))}
    fmri = FmriSubject(subject, betas.astype(np.float32), trials, code.coords, code.roi, info)
    return SimulatedSubject(fmri, code, effects, p)


def simulate_fmri_subject(
    stimuli_table: Path | str,
    images_root: Path | str,
    subject: str,
    cfg: Mapping[str, Any],
    seed: int,
) -> tuple[FmriSubject, dict[str, Any]]:
    """One simulated subject (its :class:`FmriSubject`) and the ground truth that generated it."""
    sim = simulate_subject(stimuli_table, images_root, subject, cfg, seed)
    code, p = sim.code, sim.params
    truth = {
        "subject": subject,
        "seed": int(seed),
        "params": {k: getattr(p, k) for k in p.__dataclass_fields__},
        "voxels": {
            "roi": code.roi.tolist(),
            "gain": code.snr.round(6).tolist(),
            "ncsnr": code.ncsnr.round(6).tolist(),
        },
        "prf": {k: np.asarray(v).round(6).tolist() for k, v in code.prf.items()},
        "feature_channels": list(FEATURE_CHANNELS),
        **code.truth,
        "ncsnr_median": float(np.median(code.ncsnr)),
        "noise_ceiling_single_trial_median": float(np.median(noise_ceiling(code.ncsnr, 1)) / 100),
        "noise_ceiling_3_trials_median": float(np.median(noise_ceiling(code.ncsnr, 3)) / 100),
    }
    return sim.fmri, truth


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
