"""Image-reconstruction metrics, as defined in MindEye's public evaluation script and used across the field.

Every function is pure: arrays in, numbers out. Images are ``(n, H, W, 3)`` arrays, either ``uint8`` in
[0, 255] or floats in [0, 1]; features are ``(n, d)`` arrays (any trailing shape is flattened).
Directions: ``pixcorr``, ``ssim`` and ``two_way_identification`` are higher-is-better (chance 0, ~0, 0.5);
``correlation_distance`` is lower-is-better. :data:`HIGHER_IS_BETTER` records this for table writers.
NaN or infinite images or features raise :class:`~megdecode.metrics.retrieval.NonFiniteError`: they are
errors, never scores.
"""

from __future__ import annotations

import numpy as np

from megdecode.metrics.retrieval import check_finite

#: Direction of every metric family (by prefix/suffix of its column name); used by the summary tables.
HIGHER_IS_BETTER: dict[str, bool] = {"pixcorr": True, "ssim": True, "two_way": True, "distance": False}


def metric_higher_is_better(column: str) -> bool:
    """Direction of a metric column: ``*_distance`` is lower-is-better, everything else here is higher."""
    if column.endswith("_distance"):
        return False
    for key, value in HIGHER_IS_BETTER.items():
        if column.startswith(key):
            return value
    raise KeyError(f"unknown metric column {column!r}; expected pixcorr, ssim, two_way_* or *_distance")


def to_float_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    """Return ``(n, H, W, 3)`` float64 images in [0, 1] (uint8 is divided by 255); NaN/inf raise."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (n, H, W, 3), got {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    check_finite(images, what)
    return images.astype(np.float64)


def _check_pairs(seen: np.ndarray, recon: np.ndarray) -> None:
    if seen.shape != recon.shape:
        raise ValueError(f"seen and reconstructed images differ in shape: {seen.shape} vs {recon.shape}")
    if len(seen) == 0:
        raise ValueError("no images to compare")


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / denom
    return np.where(denom > 0, r, 0.0)


def pixcorr_per_image(seen: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Pearson correlation between the flattened pixels (all channels) of each seen/reconstructed pair."""
    seen, recon = to_float_images(seen, "seen images"), to_float_images(recon, "reconstructed images")
    _check_pairs(seen, recon)
    return _rowwise_pearson(seen.reshape(len(seen), -1), recon.reshape(len(recon), -1))


def pixcorr(seen: np.ndarray, recon: np.ndarray) -> float:
    """PixCorr (higher is better): mean pixel-wise Pearson r over image pairs."""
    return float(pixcorr_per_image(seen, recon).mean())


def rgb_to_gray(images: np.ndarray, what: str = "images") -> np.ndarray:
    """ITU-R 601 luma (the weights of ``skimage.color.rgb2gray``), images as floats in [0, 1]."""
    return to_float_images(images, what) @ np.array([0.2125, 0.7154, 0.0721])


def ssim_per_image(seen: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Grayscale SSIM of each pair with Gaussian weights (sigma 1.5), data range 1, population covariance."""
    from skimage.metrics import structural_similarity

    seen_g, recon_g = rgb_to_gray(seen, "seen images"), rgb_to_gray(recon, "reconstructed images")
    _check_pairs(seen_g, recon_g)
    return np.array(
        [
            structural_similarity(
                s, r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
            for s, r in zip(seen_g, recon_g, strict=True)
        ]
    )


def ssim(seen: np.ndarray, recon: np.ndarray) -> float:
    """SSIM (higher is better): mean grayscale SSIM over image pairs."""
    return float(ssim_per_image(seen, recon).mean())


def _flat_features(features: np.ndarray, what: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    check_finite(features, what)
    return features.reshape(len(features), -1)


def _feature_pairs(seen_features: np.ndarray, recon_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seen_f = _flat_features(seen_features, "seen-image features")
    recon_f = _flat_features(recon_features, "reconstruction features")
    if seen_f.shape != recon_f.shape:
        raise ValueError(f"feature shapes differ: {seen_f.shape} vs {recon_f.shape}")
    return seen_f, recon_f


def feature_correlations(seen_features: np.ndarray, recon_features: np.ndarray) -> np.ndarray:
    """``r[i, j]`` = Pearson correlation of seen image ``i``'s features with reconstruction ``j``'s."""
    seen_f, recon_f = _feature_pairs(seen_features, recon_features)

    def zscore(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)

    return zscore(seen_f) @ zscore(recon_f).T


def two_way_identification_per_image(seen_features: np.ndarray, recon_features: np.ndarray) -> np.ndarray:
    """Per reconstruction ``j``: fraction of the other seen images ``i != j`` whose features correlate with
    reconstruction ``j`` strictly less than its own seen image ``j`` does (ties count as failures)."""
    r = feature_correlations(seen_features, recon_features)
    n = len(r)
    if n < 2:
        raise ValueError("two-way identification needs at least 2 images")
    own = np.diag(r)
    wins = (r < own[None, :]).sum(axis=0)  # the diagonal never counts: r[j, j] < r[j, j] is False
    return wins / (n - 1)


def two_way_identification(seen_features: np.ndarray, recon_features: np.ndarray) -> float:
    """Two-way identification (higher is better; chance 0.5, perfect 1.0), averaged over reconstructions."""
    return float(two_way_identification_per_image(seen_features, recon_features).mean())


def correlation_distance_per_image(seen_features: np.ndarray, recon_features: np.ndarray) -> np.ndarray:
    """1 - Pearson r between the features of each seen image and its own reconstruction."""
    seen_f, recon_f = _feature_pairs(seen_features, recon_features)
    return 1.0 - _rowwise_pearson(seen_f, recon_f)


def correlation_distance(seen_features: np.ndarray, recon_features: np.ndarray) -> float:
    """Correlation distance (lower is better): mean of 1 - r over seen/reconstruction pairs."""
    return float(correlation_distance_per_image(seen_features, recon_features).mean())
