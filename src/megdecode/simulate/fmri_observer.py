"""Ideal observers of the simulated 7T study: the fMRI ceiling and the calibration anchor.

An ideal observer ranks gallery images by the likelihood of a (session-corrected) response under the
simulator's Gaussian model. What it may know decides what it measures:

- the **fair ceiling** (:func:`fair_scores`) knows what a decoder could learn from the training concepts:
  each gallery image's learnable mean response (pRF drive, attribute embeddings, image statistics), the
  voxels' ncsnr, the session gains and offsets (estimable from each session's training trials) and the noise
  covariance; a held-out concept's own random code it does not know: it marginalises it with its prior
  (a standard normal vector read out by the known ``concept_loading``), which adds a low-rank term to the
  covariance. It is the fMRI ceiling beside the decoders.
- the **oracle** (``known_concepts`` covering every concept) also knows each concept's own code; on images of
  training concepts (new exemplars of familiar concepts, as NSD's test images are new scenes of familiar
  categories) the two coincide: that is the setting of the calibration anchor (:func:`identification`).

Likelihoods use Woodbury's identity: the covariance is ``white * I + U U^T`` with ``U`` the noise loadings
(and the marginalised concept read-out), so nothing of size voxels x voxels is formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from megdecode.simulate.fmri import VoxelCode


@dataclass(frozen=True)
class LowRankGaussian:
    """Covariance ``white * I + loadings @ loadings.T`` (voxels x voxels), kept in factored form."""

    loadings: np.ndarray  # (voxels, rank)
    white: float

    def _inner(self) -> np.ndarray:
        u = self.loadings
        return self.white * np.eye(u.shape[1]) + u.T @ u

    def mahalanobis(self, x: np.ndarray, means: np.ndarray) -> np.ndarray:
        """(n, g) squared Mahalanobis distance of each row of ``x`` to each row of ``means``."""
        u, a = self.loadings, self.white
        chol = np.linalg.cholesky(self._inner())

        def parts(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # v' S^-1 w = (v.w - (L^-1 U'v).(L^-1 U'w)) / a
            return v, np.linalg.solve(chol, u.T @ v.T).T

        xv, xp = parts(np.asarray(x, np.float64))
        mv, mp = parts(np.asarray(means, np.float64))
        cross = xv @ mv.T - xp @ mp.T
        xx = (xv**2).sum(axis=1) - (xp**2).sum(axis=1)
        mm = (mv**2).sum(axis=1) - (mp**2).sum(axis=1)
        return (xx[:, None] + mm[None, :] - 2 * cross) / a

    def logdet(self) -> float:
        n = self.loadings.shape[0]
        sign, value = np.linalg.slogdet(self._inner() / self.white)
        return float(n * np.log(self.white) + value)

    def scaled(self, factor: float) -> LowRankGaussian:
        """The covariance times ``factor`` (an average of r trials: factor 1/r)."""
        return LowRankGaussian(self.loadings * np.sqrt(factor), self.white * factor)

    def plus(self, loadings: np.ndarray) -> LowRankGaussian:
        """The covariance plus ``loadings @ loadings.T``."""
        return LowRankGaussian(np.concatenate([self.loadings, loadings], axis=1), self.white)


def _means(code: VoxelCode, rows: np.ndarray, known_concepts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which rows' concepts are known, and the mean single-trial response the observer expects of each row:
    ``gain * learnable``, plus the concept's own code's contribution where it is known."""
    known = np.isin(code.concepts[rows], np.asarray(list(known_concepts), dtype=str))
    means = code.learnable[rows].astype(np.float64)
    means[known] = code.signal_of(rows[known])
    return known, means * code.snr


def log_likelihoods(
    code: VoxelCode,
    x: np.ndarray,
    gallery_ids: Sequence[str],
    n_trials: int,
    known_concepts: Sequence[str] = (),
) -> np.ndarray:
    """(n, gallery) log-likelihood (up to a constant) of each response row of ``x`` (session-corrected, the
    average of ``n_trials`` trials) under each gallery image: mean ``snr * learnable`` plus, for a concept in
    ``known_concepts``, its own code's contribution; an unknown concept's code is marginalised."""
    rows = code.rows(gallery_ids)
    known, means = _means(code, rows, known_concepts)
    noise = LowRankGaussian(code.noise.loadings, code.noise.white).scaled(1.0 / n_trials)
    out = np.empty((len(x), len(rows)))
    for is_known, cov in ((True, noise), (False, noise.plus(code.snr[:, None] * code.concept_loading))):
        cols = np.flatnonzero(known == is_known)
        if len(cols):
            out[:, cols] = -0.5 * (cov.mahalanobis(x, means[cols]) + cov.logdet())
    return out


def fair_scores(
    code: VoxelCode,
    x: np.ndarray,
    gallery_ids: Sequence[str],
    n_trials: int,
    training_concepts: Sequence[str],
) -> np.ndarray:
    """The fair ceiling's (n, gallery) scores: it knows the codes of ``training_concepts`` only."""
    return log_likelihoods(code, x, gallery_ids, n_trials, known_concepts=training_concepts)


def draw_responses(
    code: VoxelCode, image_ids: Sequence[str], n_trials: int, rng: np.random.Generator
) -> np.ndarray:
    """(len(image_ids), voxels) the average of ``n_trials`` simulated single trials of each image
    (session-corrected: ``snr * signal + noise``)."""
    rows = code.rows(image_ids)
    base = code.signal_of(rows) * code.snr
    noise = np.mean([code.noise.draw(len(rows), rng) for _ in range(n_trials)], axis=0)
    return base + noise


def identification(
    code: VoxelCode,
    pool: Sequence[str],
    gallery_size: int,
    n_trials: int,
    n_draws: int,
    rng: np.random.Generator,
    known_concepts: Sequence[str] = (),
    topk: int = 1,
) -> float:
    """Top-``topk`` identification accuracy of the ideal observer among ``gallery_size`` images drawn from
    ``pool`` (``n_draws`` independent galleries, fresh trials each; the average of ``n_trials`` trials),
    averaged over draws: MindEye's protocol (300 random test images, 30 draws) on the simulator."""
    pool = np.asarray(pool).astype(str)
    if gallery_size > len(pool):
        raise ValueError(f"a {gallery_size}-image gallery needs at least that many images, got {len(pool)}")
    accuracies = []
    for _ in range(n_draws):
        gallery = np.sort(rng.choice(pool, size=gallery_size, replace=False))
        x = draw_responses(code, gallery, n_trials, rng)
        scores = log_likelihoods(code, x, gallery, n_trials, known_concepts)
        own = np.diag(scores)
        better = (scores > own[:, None]).sum(axis=1)
        accuracies.append(float(np.mean(better < topk)))
    return float(np.mean(accuracies))


def pairwise_dprime(
    code: VoxelCode, image_ids: Sequence[str], known_concepts: Sequence[str] = ()
) -> np.ndarray:
    """Single-trial d' of the ideal observer for every pair of ``image_ids`` (upper triangle, flattened):
    the Mahalanobis distance of the two images' mean responses under the single-trial covariance (with the
    codes of concepts outside ``known_concepts`` marginalised)."""
    rows = code.rows(image_ids)
    known, means = _means(code, rows, known_concepts)
    cov = LowRankGaussian(code.noise.loadings, code.noise.white)
    if not known.all():
        cov = cov.plus(code.snr[:, None] * code.concept_loading)
    d2 = cov.mahalanobis(means, means)
    return np.sqrt(np.maximum(d2[np.triu_indices(len(rows), 1)], 0.0))
