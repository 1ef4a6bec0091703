"""A simulation-only attribute readout: the simulated world's shape, colour and texture read from pixels.

Not one of the paper's high-level metrics (those are Inception, CLIP, AlexNet(5), EfficientNet and SwAV
features of networks trained on natural images: :mod:`megdecode.metrics.extractors`, an optional extra). It
answers a narrower question of the simulated study: does a reconstruction show its seen image's attributes?
Fixed, deterministic image features (:func:`readout_features`: colour histogram, HOG, LBP, spectrum, shape
moments) -> one multinomial logistic classifier per attribute, fitted on training images only (``exp`` images
of training concepts; a seeded part held out to report its accuracy) -> the predicted class probabilities,
concatenated over attributes (:meth:`AttributeReadout.vector`). The metrics job applies the same readout to
the seen test images and to the reconstructions (both at the metric's resolution) and scores two-way
identification and correlation distance on those vectors (``two_way_attribute_readout``,
``attribute_readout_distance``; level ``simulation`` in the comparison tables). Its features overlap the
simulated MEG's and fMRI's low-level codes (colour, contrast), and it reads colour far better than shape: a
check of the simulation, not a measure of semantic content.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.attribute_readout import attribute_key
from megdecode.artifacts.splits import TEST_SMALL, TRAIN, VAL, LeakageError, check_no_leakage
from megdecode.artifacts.stimuli import train_image_ids
from megdecode.config import dataclass_from_section
from megdecode.seeds import derive_rng

log = logging.getLogger(__name__)

SECTION = "reconstruction.metrics.attribute_readout"
#: the metric's feature-set name: columns ``two_way_attribute_readout`` and ``attribute_readout_distance``
METRIC_NAME = "attribute_readout"


@dataclass(frozen=True)
class ReadoutOptions:
    """Options of the readout (``reconstruction.metrics.attribute_readout``; defaults in the schema)."""

    enabled: str | bool
    attributes: list[str]
    val_fraction: float
    inverse_regularisation: float
    max_iter: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ReadoutOptions:
        opts = dataclass_from_section(cls, cfg, SECTION)
        if not opts.attributes:
            raise ValueError(f"{SECTION}.attributes: name at least one stimulus-table column")
        if not 0 < opts.val_fraction <= 0.5:
            raise ValueError(f"{SECTION}.val_fraction must be in (0, 0.5], got {opts.val_fraction}")
        return opts


# --------------------------------------------------------------------------- pixel features


def _figure_map(rgb: np.ndarray) -> np.ndarray:
    """Figure/ground weight per pixel: L1 colour distance to the median colour of the image border."""
    x = rgb.astype(np.float64) / 255.0
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    return np.abs(x - np.median(border, axis=0)).sum(axis=2)


def _hu_moments(weights: np.ndarray) -> np.ndarray:
    """The 7 Hu moments of a weight map (invariant to translation, scale, rotation), signed log10."""
    from skimage.measure import moments_central, moments_hu, moments_normalized

    if weights.sum() <= 0:
        return np.zeros(7)
    hu = moments_hu(moments_normalized(moments_central(weights, order=3), 3))
    return np.sign(hu) * np.log10(np.abs(hu) + 1e-12)


def _radial_profile(weights: np.ndarray, n_bins: int = 12) -> np.ndarray:
    """Mean weight in rings around the weight map's centroid, out to 2.5 x its RMS radius, max-normalised."""
    n = weights.shape[0]
    total = weights.sum()
    if total <= 0:
        return np.zeros(n_bins)
    yy, xx = np.mgrid[:n, :n]
    cy, cx = (weights * yy).sum() / total, (weights * xx).sum() / total
    r = np.hypot(yy - cy, xx - cx)
    rms = np.sqrt((weights * r**2).sum() / total) + 1e-9
    idx = np.minimum((r / rms / 2.5 * n_bins).astype(np.int64), n_bins - 1).ravel()
    mean = np.bincount(idx, weights=weights.ravel(), minlength=n_bins) / np.bincount(
        idx, minlength=n_bins
    ).clip(1)
    return mean / (mean.max() + 1e-9)


def _power_spectrum(gray: np.ndarray, n_radial: int = 8, n_angular: int = 4) -> np.ndarray:
    """Log power of the luminance spectrum in polar bins (radial frequency x orientation)."""
    n = gray.shape[0]
    power = np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean()))) ** 2
    f = np.fft.fftshift(np.fft.fftfreq(n))
    fx, fy = np.meshgrid(f, f)
    ri = np.minimum((np.hypot(fx, fy) / 0.5 * n_radial).astype(np.int64), n_radial - 1)
    ai = np.minimum((np.mod(np.arctan2(fy, fx), np.pi) / np.pi * n_angular).astype(np.int64), n_angular - 1)
    binned = np.bincount((ri * n_angular + ai).ravel(), weights=power.ravel(), minlength=n_radial * n_angular)
    return np.log(binned + 1e-6)


def image_readout_features(rgb: np.ndarray) -> np.ndarray:
    """Fixed features of one uint8 RGB image (square): joint colour histogram and HOG on a 4 x 4 grid
    (each L2-normalised, as the ``handcrafted`` backbone computes them), LBP histogram, a global orientation
    histogram, Hu moments and radial profile of the figure/ground map, and the polar power spectrum."""
    from skimage.feature import hog

    from megdecode.latents.handcrafted import HandcraftedOptions, handcrafted_vector, lbp_histogram, to_gray

    side = rgb.shape[0]
    if rgb.ndim != 3 or rgb.shape[1] != side or rgb.shape[2] != 3 or side < 16:
        raise ValueError(f"the attribute readout needs square RGB images of side >= 16, got {rgb.shape}")
    base = HandcraftedOptions(
        features=["colour_histogram", "hog"], image_size=side, hog_pixels_per_cell=side // 4
    )
    gray = to_gray(rgb)
    figure = _figure_map(rgb)
    global_orientation = hog(
        gray, orientations=12, pixels_per_cell=(side, side), cells_per_block=(1, 1), feature_vector=True
    )
    blocks = [
        handcrafted_vector(rgb, base),
        lbp_histogram(gray),
        global_orientation,
        _hu_moments(figure),
        _radial_profile(figure),
        _power_spectrum(gray),
    ]
    return np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks])


def readout_features(images: np.ndarray) -> np.ndarray:
    """:func:`image_readout_features` of ``uint8 (n, S, S, 3)`` images -> ``(n, d)``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images (n, S, S, 3), got {images.dtype} {images.shape}")
    return np.stack([image_readout_features(im) for im in images])


# --------------------------------------------------------------------------- the readout


@dataclass
class AttributeReadout:
    """Standardisation + one softmax classifier per attribute (coefficients (k, d), intercepts (k,))."""

    attributes: list[str]
    classes: dict[str, list[str]]
    coef: dict[str, np.ndarray]
    intercept: dict[str, np.ndarray]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    image_px: int
    fit_ids: list[str]
    val_ids: list[str]

    def probabilities(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Per attribute, ``(n, k)`` class probabilities (softmax of the linear scores)."""
        z = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        out = {}
        for a in self.attributes:
            scores = z @ self.coef[a].T + self.intercept[a]
            scores -= scores.max(axis=1, keepdims=True)
            e = np.exp(scores)
            out[a] = e / e.sum(axis=1, keepdims=True)
        return out

    def vector(self, images: np.ndarray) -> np.ndarray:
        """Concatenated class probabilities of every attribute, ``(n, sum k)``: what two-way scores."""
        if images.shape[1] != self.image_px:
            raise ValueError(
                f"the attribute readout was fitted on {self.image_px}-px images, got {images.shape[1]} px; "
                "rerun rule attribute_readout with reconstruction.metrics.image_size"
            )
        probs = self.probabilities(readout_features(images))
        return np.concatenate([probs[a] for a in self.attributes], axis=1)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Per attribute, the most probable class of each image."""
        return {
            a: np.asarray(self.classes[a])[p.argmax(axis=1)] for a, p in self.probabilities(features).items()
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "attributes": np.array(self.attributes, dtype=str),
            "image_px": np.array(self.image_px),
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
            "fit_ids": np.array(self.fit_ids, dtype=str),
            "val_ids": np.array(self.val_ids, dtype=str),
        }
        for a in self.attributes:
            arrays[attribute_key("classes", a)] = np.array(self.classes[a], dtype=str)
            arrays[attribute_key("coef", a)] = self.coef[a]
            arrays[attribute_key("intercept", a)] = self.intercept[a]
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> AttributeReadout:
        attributes = [str(a) for a in np.asarray(arrays["attributes"]).tolist()]
        return cls(
            attributes=attributes,
            classes={a: [str(c) for c in arrays[attribute_key("classes", a)].tolist()] for a in attributes},
            coef={a: np.asarray(arrays[attribute_key("coef", a)], dtype=np.float64) for a in attributes},
            intercept={
                a: np.asarray(arrays[attribute_key("intercept", a)], dtype=np.float64) for a in attributes
            },
            feature_mean=np.asarray(arrays["feature_mean"], dtype=np.float64),
            feature_scale=np.asarray(arrays["feature_scale"], dtype=np.float64),
            image_px=int(arrays["image_px"]),
            fit_ids=[str(i) for i in arrays["fit_ids"].tolist()],
            val_ids=[str(i) for i in arrays["val_ids"].tolist()],
        )


def fit_readout(
    features: np.ndarray,
    labels: pd.DataFrame,
    opts: ReadoutOptions,
    image_px: int,
    fit_ids: Sequence[str],
    val_ids: Sequence[str] = (),
) -> AttributeReadout:
    """Fit one L2-regularised multinomial logistic regression (L-BFGS, deterministic) per attribute column
    of ``labels`` on standardised ``features`` (rows aligned)."""
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, dtype=np.float64)
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (features - mean) / scale
    classes, coef, intercept = {}, {}, {}
    for a in opts.attributes:
        y = labels[a].astype(str).to_numpy()
        values = sorted(set(y))
        if len(values) == 1:  # nothing to learn: probability 1 for the only class
            log.info("attribute readout: attribute %s has a single value (%s) in training", a, values[0])
            classes[a], coef[a], intercept[a] = values, np.zeros((1, z.shape[1])), np.zeros(1)
            continue
        clf = LogisticRegression(C=opts.inverse_regularisation, max_iter=opts.max_iter).fit(z, y)
        classes[a] = [str(c) for c in clf.classes_]
        if len(values) == 2:  # sklearn's binary model: sigmoid(s) == softmax([-s/2, s/2])[1]
            coef[a] = np.vstack([-clf.coef_ / 2, clf.coef_ / 2])
            intercept[a] = np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
        else:
            coef[a], intercept[a] = clf.coef_.copy(), clf.intercept_.copy()
    return AttributeReadout(
        attributes=list(opts.attributes),
        classes=classes,
        coef=coef,
        intercept=intercept,
        feature_mean=mean,
        feature_scale=scale,
        image_px=int(image_px),
        fit_ids=list(fit_ids),
        val_ids=list(val_ids),
    )


def accuracy_table(
    readout: AttributeReadout, features: np.ndarray, labels: pd.DataFrame, split: str
) -> pd.DataFrame:
    """Per attribute: accuracy of the readout on ``features`` against ``labels``, and chance (1 / classes)."""
    predicted = readout.predict(features)
    return pd.DataFrame(
        [
            {
                "attribute": a,
                "split": split,
                "n_fit": len(readout.fit_ids),
                "n_images": len(labels),
                "n_classes": len(readout.classes[a]),
                "accuracy": float(np.mean(predicted[a] == labels[a].astype(str).to_numpy())),
                "chance": 1.0 / len(readout.classes[a]),
            }
            for a in readout.attributes
        ]
    )


def readout_images(
    stimuli: pd.DataFrame, opts: ReadoutOptions, seed: int, where: str = "stimulus table"
) -> tuple[list[str], list[str]]:
    """The images the readout may learn from, split into fit and val (seeded): ``exp`` images of training
    concepts only. Missing attribute columns or values are a clear error; a test image or a test concept
    among them is a :class:`~megdecode.artifacts.splits.LeakageError`."""
    missing = [a for a in opts.attributes if a not in stimuli.columns]
    if missing:
        raise ValueError(
            f"{where}: the attribute readout needs attribute column(s) {', '.join(missing)} "
            f"(columns: {', '.join(map(str, stimuli.columns))}); set {SECTION}.attributes to existing "
            f"columns, or {SECTION}.enabled: false"
        )
    ids = train_image_ids(stimuli)
    if len(ids) < 4:
        raise ValueError(f"{where}: {len(ids)} training images; the attribute readout needs at least 4")
    empty = [a for a in opts.attributes if stimuli.loc[ids, a].isna().any()]
    if empty:
        raise ValueError(
            f"{where}: training images without a value in {', '.join(empty)}; fill the column(s) or drop "
            f"them from {SECTION}.attributes"
        )
    rng = derive_rng(seed, "attribute_readout", "val")
    n_val = max(1, int(round(opts.val_fraction * len(ids))))
    val = set(rng.choice(np.array(ids), size=n_val, replace=False).tolist())
    fit_ids = [i for i in ids if i not in val]
    val_ids = [i for i in ids if i in val]
    check_readout_images(stimuli, fit_ids + val_ids, where)
    return fit_ids, val_ids


def check_readout_images(stimuli: pd.DataFrame, image_ids: Sequence[str], where: str) -> None:
    """Raise :class:`LeakageError` if an image the readout learns from is a test image or shows a test
    concept (the project's leakage check, on the readout's images against the table's test rows)."""
    chosen = stimuli.loc[list(image_ids)]
    not_train = chosen.index[(chosen["role"] != "exp") | (chosen.get("concept_split", TRAIN) != TRAIN)]
    if len(not_train):
        raise LeakageError(
            f"{where}: the attribute readout would learn from non-training images {list(not_train)[:5]}"
        )
    test = stimuli[(stimuli["role"] == "test") | (stimuli.get("concept_split", TRAIN) == "test")]
    rows = pd.concat([chosen.assign(split=VAL), test.assign(split=TEST_SMALL)], ignore_index=True)[
        ["image_id", "concept", "split"] if "concept" in stimuli.columns else ["image_id", "split"]
    ]
    check_no_leakage(rows, where)


def build_readout(
    stimuli: pd.DataFrame,
    images_root: Path | str,
    image_px: int,
    opts: ReadoutOptions,
    seed: int,
    where: str = "stimulus table",
) -> tuple[AttributeReadout, pd.DataFrame]:
    """Fit the readout on the fit part of the training images (at ``image_px``, loaded as the metrics job
    loads the seen images) and measure its accuracy on the held-out val part."""
    from megdecode.reconstruction.base import load_images

    fit_ids, val_ids = readout_images(stimuli, opts, seed, where)
    feats = {
        split: readout_features(load_images(stimuli, images_root, ids, image_px))
        for split, ids in ((TRAIN, fit_ids), (VAL, val_ids))
    }
    readout = fit_readout(feats[TRAIN], stimuli.loc[fit_ids], opts, image_px, fit_ids, val_ids)
    accuracy = accuracy_table(readout, feats[VAL], stimuli.loc[val_ids], VAL)
    return readout, accuracy


def accuracy_summary(accuracy: pd.DataFrame) -> str:
    """``shape 0.63 (chance 0.17), ...`` for log lines."""
    return ", ".join(
        f"{r.attribute} {r.accuracy:.2f} (chance {r.chance:.2f})" for r in accuracy.itertuples(index=False)
    )


def fit_and_write(
    stimuli_tsv: str,
    images_root: str,
    cfg: Mapping[str, Any],
    image_px: int,
    seed: int,
    out_model: str,
    out_accuracy: str,
) -> pd.DataFrame:
    """Rule ``attribute_readout``: fit on training images, write ``readout.npz`` and ``accuracy.tsv``."""
    from megdecode.artifacts.attribute_readout import write_accuracy, write_readout_model
    from megdecode.artifacts.stimuli import read_stimuli

    opts = ReadoutOptions.from_config(cfg)
    stimuli = read_stimuli(stimuli_tsv)
    readout, accuracy = build_readout(stimuli, images_root, image_px, opts, seed, where=stimuli_tsv)
    log.info(
        "attribute readout at %d px, fitted on %d training images; accuracy on %d held-out ones: %s",
        image_px,
        len(readout.fit_ids),
        len(readout.val_ids),
        accuracy_summary(accuracy),
    )
    write_readout_model(readout.to_arrays(), out_model)
    write_accuracy(accuracy, out_accuracy)
    return accuracy


def load_readout(path: str) -> AttributeReadout:
    from megdecode.artifacts.attribute_readout import read_readout_model

    return AttributeReadout.from_arrays(read_readout_model(path))
