"""Image-reconstruction metrics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from megdecode.metrics import image as im


def _images(n: int = 6, size: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_identical_images_score_one() -> None:
    images = _images()
    assert im.pixcorr(images, images) == pytest.approx(1.0)
    assert im.ssim(images, images) == pytest.approx(1.0)


def test_pixcorr_of_inverted_image_is_minus_one_and_independent_is_near_zero() -> None:
    images = _images(n=4, size=64)
    assert im.pixcorr(images, 255 - images) == pytest.approx(-1.0)
    assert abs(im.pixcorr(images, _images(n=4, size=64, seed=1))) < 0.02


def test_pixcorr_ignores_brightness_and_contrast_but_ssim_does_not() -> None:
    images = _images().astype(np.float64) / 255.0
    scaled = 0.25 + 0.5 * images
    assert im.pixcorr(images, scaled) == pytest.approx(1.0)
    assert im.ssim(images, scaled) < 0.95


def test_ssim_matches_skimage_on_grayscale_with_gaussian_weights() -> None:
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    a, b = _images(n=2, size=32, seed=3)
    expected = structural_similarity(
        rgb2gray(a),
        rgb2gray(b),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert im.ssim(a[None], b[None]) == pytest.approx(expected, abs=1e-6)


def test_two_way_identification_perfect_features_score_one() -> None:
    feats = np.random.default_rng(0).standard_normal((20, 50))
    assert im.two_way_identification(feats, feats) == pytest.approx(1.0)
    # any monotone-linear change of the reconstruction features keeps the correlations
    assert im.two_way_identification(feats, 3 * feats + 1) == pytest.approx(1.0)


def test_two_way_identification_independent_features_near_chance() -> None:
    rng = np.random.default_rng(1)
    scores = [
        im.two_way_identification(rng.standard_normal((100, 64)), rng.standard_normal((100, 64)))
        for _ in range(5)
    ]
    assert abs(np.mean(scores) - 0.5) < 0.03


def test_two_way_identification_hand_computed() -> None:
    # reconstruction 0 equals seen 1: its own seen image ties with seen 2 (r = -1/3 each) and loses to seen 1,
    # so 0 wins out of 2 (ties are failures); reconstructions 1 and 2 are their own best.
    seen = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    recon = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    per_image = im.two_way_identification_per_image(seen, recon)
    np.testing.assert_allclose(per_image, [0.0, 1.0, 1.0])


def test_correlation_distance() -> None:
    feats = np.random.default_rng(2).standard_normal((5, 30))
    assert im.correlation_distance(feats, feats) == pytest.approx(0.0, abs=1e-12)
    assert im.correlation_distance(feats, -feats) == pytest.approx(2.0)


def test_metric_directions_and_shape_errors() -> None:
    assert im.metric_higher_is_better("two_way_hog")
    assert not im.metric_higher_is_better("swav_distance")
    with pytest.raises(ValueError, match="differ in shape"):
        im.pixcorr(_images(size=8), _images(size=16))
    with pytest.raises(ValueError, match="at least 2"):
        im.two_way_identification(np.ones((1, 3)), np.ones((1, 3)))


@pytest.mark.parametrize("metric", [im.pixcorr, im.ssim])
def test_non_finite_reconstructions_raise_instead_of_scoring(metric) -> None:
    seen = _images().astype(np.float64) / 255.0
    recon = seen.copy()
    recon[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"reconstructed images contain 1 NaN or infinite.*first: row 3"):
        metric(seen, recon)
    with pytest.raises(ValueError, match="seen images contain"):
        metric(np.full_like(seen, np.inf), seen)


@pytest.mark.parametrize("metric", [im.two_way_identification, im.correlation_distance])
def test_non_finite_features_raise_instead_of_scoring(metric) -> None:
    # NaN features used to give a zero correlation: two-way 0.0, distance 1.0, as if they were numbers
    rng = np.random.default_rng(0)
    seen, recon = rng.standard_normal((5, 16)), rng.standard_normal((5, 16))
    recon[1] = np.nan
    with pytest.raises(ValueError, match=r"reconstruction features contain 16 NaN.*first: row 1"):
        metric(seen, recon)
