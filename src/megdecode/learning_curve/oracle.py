"""The oracle ceiling: retrieval by the generative model itself.

Each test epoch is compared with the simulator's noiseless response to every gallery image (unit gain, no
latency shift) by the Mahalanobis distance under the simulator's true noise covariance
(:class:`~megdecode.learning_curve.epochs.NoiseModel`). It trains on nothing, so it is the same at every
training-set size. It is a ceiling for what the epochs carry about the images, not a bound every decoder
must stay under: it ignores the trial's gain and latency shifts, which it does not know.
"""

from __future__ import annotations

import numpy as np

from megdecode.learning_curve.epochs import NoiseModel


def oracle_similarity(noise: NoiseModel, epochs: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(n_epochs, n_gallery) similarity: minus the squared Mahalanobis distance of each epoch to each
    noiseless gallery response. An epoch averaged over r repetitions has covariance / r: the ranking is
    the same."""
    x, m = noise.whiten(epochs), noise.whiten(means)
    return 2 * x @ m.T - (x**2).sum(axis=1, keepdims=True) - (m**2).sum(axis=1)[None, :]
