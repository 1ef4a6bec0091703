"""The learning curve's two ceilings: retrieval by the generative model itself.

Both match each test epoch (the small set averaged over its repetitions) with Gaussian models of the
simulator's responses under its true noise covariance (:class:`~megdecode.learning_curve.epochs.NoiseModel`),
and both ignore the trial's gain and latency shifts (unit gain, no shift: they do not know them). Neither
trains on anything, so each is the same at every training-set size.

- **Image oracle** (:func:`oracle_similarity`, decoder ``oracle_image``): the Mahalanobis distance of the
  epoch to the noiseless response of every gallery image. That response holds the held-out concept's own
  random code (nonlinear world) and the exemplar's own early response, which no decoder trained on other
  concepts can know: it measures what the epochs carry about the images, not what can be learned.
- **Fair ceiling** (:class:`FairCeiling`, decoder ``ceiling_fair``): a Bayes template matcher that knows only
  what a decoder could learn from the study's training concepts. Each gallery item's concept ``c`` gets the
  likelihood of the epoch under ``N(mu_c, Sigma / r + B Lambda_c B^T)``: ``mu_c`` is the evoked response plus
  the concept's expected early response (mean early code over fresh renders of the concept,
  :func:`concept_render_features`) plus its learnable late response (linear world: the sum of its attribute
  codes, each value seen in a training concept; nonlinear world: its (shape, colour) pair code when a
  training concept has that pair, else the prior mean 0); ``Lambda_c`` adds the early code's spread over the
  renders (the exemplar spread) and the prior of what cannot be learned (the concept's own code, and an unseen
  pair's code: independent entries of variance 1/2, :data:`~megdecode.simulate.stimuli.CONJUNCTIVE_CODE_SD`);
  ``B`` maps codes to responses through the forward fields and Gaussian waves
  (:meth:`~megdecode.learning_curve.epochs.EpochSimulator.code_responses`); ``r`` is the number of averaged
  repetitions. ``B Lambda_c B^T`` has rank at most n_features + n_late_codes (28), so the likelihood is
  computed with the Woodbury identity in the noise-whitened space (:func:`gaussian_log_likelihood`). Items of
  one concept get the same score and tie (ties count as expected hits). An epoch that also holds other
  responses (the EEG curve's neighbours in a rapid presentation) adds their Gaussian model
  (:class:`NeighbourContext`: its mean to ``mu_c``, its covariance / r to the covariance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import linalg

from megdecode.learning_curve.epochs import NoiseModel
from megdecode.seeds import derive_rng
from megdecode.simulate.stimuli import (
    ATTRIBUTES,
    CONJUNCTIVE_CODE_SD,
    LOW_LEVEL_FEATURES,
    Concept,
    draw_exemplar,
    features_early_code,
    image_features,
    render_image,
)

#: Linear world: variance of each entry of one attribute value's code (encoding_ground_truth draws them
#: N(0, 1) / sqrt(number of attributes)).
ATTRIBUTE_CODE_VAR = 1 / len(ATTRIBUTES)


def oracle_similarity(noise: NoiseModel, epochs: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(n_epochs, n_gallery) similarity: minus the squared Mahalanobis distance of each epoch to each
    noiseless gallery response. An epoch averaged over r repetitions has covariance / r: the ranking is
    the same."""
    x, m = noise.whiten(epochs), noise.whiten(means)
    return 2 * x @ m.T - (x**2).sum(axis=1, keepdims=True) - (m**2).sum(axis=1)[None, :]


def concept_render_features(
    concepts: pd.DataFrame, n_renders: int, image_size: int, seed: int
) -> pd.DataFrame:
    """Low-level statistics of ``n_renders`` fresh renders of each concept (rows with ``concept``, ``shape``,
    ``colour``, ``texture``): new exemplars drawn as the study draws its own, each concept from its own
    generator keyed by its name (so a concept's renders do not depend on the others). Rounded as the
    study's ground truth stores its images' statistics."""
    rows = []
    for c in concepts.itertuples():
        rng = derive_rng(seed, "fair-ceiling", "renders", c.concept)
        concept = Concept(c.shape, c.colour, c.texture)
        for k in range(n_renders):
            feats = image_features(render_image(concept, draw_exemplar(rng), image_size)).round(6)
            rows.append([c.concept, k, *feats])
    return pd.DataFrame(rows, columns=["concept", "render", *LOW_LEVEL_FEATURES])


@dataclasses.dataclass(frozen=True)
class ConceptPrior:
    """What can be known of a concept's codes without seeing it: the early code's mean and covariance over
    fresh renders, the learnable part of the late code and the variance of each (independent) entry of the
    part that cannot be learned."""

    early_mean: np.ndarray
    early_cov: np.ndarray
    late_mean: np.ndarray
    late_var: float


def concept_prior(
    truth: dict, attrs: Mapping[str, str], training: pd.DataFrame, render_features: np.ndarray
) -> ConceptPrior:
    """The :class:`ConceptPrior` of a concept with attribute values ``attrs`` in the world of ``truth``,
    given the study's training concepts (``training``: one row per concept with ``shape``, ``colour``,
    ``texture``) and the statistics of fresh renders of the concept (n_renders, n_features). Reads the
    world's early coding and the codes of what the training concepts show, never a concept's own code."""
    codes = features_early_code(truth, np.asarray(render_features, float))
    late = truth["components"]["late"]
    n_late = late["n_dipoles"] * len(late["latencies_s"])
    if "pair_codes" in late:  # nonlinear world: pair code (learnable if a training concept has the pair)
        var = CONJUNCTIVE_CODE_SD**2  # the concept's own code
        seen = set(zip(training["shape"], training["colour"], strict=True))
        if (attrs["shape"], attrs["colour"]) in seen:
            mean = np.asarray(late["pair_codes"][attrs["shape"]][attrs["colour"]], float)
        else:
            mean, var = np.zeros(n_late), 2 * var
    else:  # linear world: the sum of the attribute values' codes; a value no training concept has is unknown
        known = [a for a in ATTRIBUTES if attrs[a] in set(training[a])]
        mean = sum((np.asarray(late["attribute_codes"][a][attrs[a]], float) for a in known), np.zeros(n_late))
        var = ATTRIBUTE_CODE_VAR * (len(ATTRIBUTES) - len(known))
    return ConceptPrior(codes.mean(axis=0), np.atleast_2d(np.cov(codes.T)), mean, float(var))


def gaussian_log_likelihood(
    x: np.ndarray, mean: np.ndarray, factor: np.ndarray, repeats: float
) -> np.ndarray:
    """log N(x; mean, I / repeats + factor factor^T) of each row of ``x`` (n, d) for ``factor`` (d, k): see
    :func:`woodbury_log_likelihood`."""
    diff = x - mean[None, :]
    return woodbury_log_likelihood(
        (diff**2).sum(axis=1), diff @ factor, factor.T @ factor, repeats, x.shape[1]
    )


def woodbury_log_likelihood(
    sq_norm: np.ndarray, proj: np.ndarray, gram: np.ndarray, repeats: float, dim: int
) -> np.ndarray:
    """log N(x; m, I / repeats + F F^T) in ``dim`` dimensions from ``sq_norm`` = |x - m|^2 (n,), ``proj`` =
    (x - m) F (n, k) and ``gram`` = F^T F (k, k), by the Woodbury identity and the matrix determinant lemma:
    nothing of size ``dim`` x ``dim`` is formed."""
    core = np.eye(len(gram)) + repeats * gram
    chol = linalg.cho_factor(core)
    solved = linalg.cho_solve(chol, proj.T).T
    quad = repeats * (sq_norm - repeats * (proj * solved).sum(axis=1))
    logdet = 2 * np.log(np.diag(chol[0])).sum() - dim * np.log(repeats)
    return -0.5 * (quad + logdet + dim * np.log(2 * np.pi))


@dataclasses.dataclass(frozen=True)
class NeighbourContext:
    """A Gaussian model of what else an epoch holds beside its image's response (the neighbours of a rapid
    serial presentation, :mod:`.eeg`): its ``mean`` (channels, times) and a ``factor`` (k, channels, times)
    whose rows give its covariance ``sum_i factor_i factor_i^T`` (over channels x times). Each repetition of
    an averaged epoch has its own, so it adds ``mean`` and ``factor factor^T / r`` to the epoch's model."""

    mean: np.ndarray
    factor: np.ndarray

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean).all() and np.isfinite(self.factor).all()):
            raise ValueError("the neighbours' mean and covariance factor must be finite")
        if self.factor.shape[1:] != self.mean.shape:
            raise ValueError(f"factor {self.factor.shape} does not match mean {self.mean.shape}")


class FairCeiling:
    """The fair ceiling of one subject (module docstring) from the noise model and the responses to the codes
    (:meth:`~megdecode.learning_curve.epochs.EpochSimulator.code_responses`). Every template and covariance
    factor lies in the span of the evoked response and the k = n_features + n_late_codes code responses, so
    after whitening everything is computed from projections on them: O(n d k) for n epochs of d values."""

    def __init__(self, noise: NoiseModel, evoked: np.ndarray, early: np.ndarray, late: np.ndarray) -> None:
        self.noise = noise
        self._evoked = noise.whiten(evoked[None])[0]
        self._basis = np.concatenate([noise.whiten(early), noise.whiten(late)])  # (k, d)
        self._gram = self._basis @ self._basis.T
        self._evoked_proj = self._basis @ self._evoked

    def log_likelihoods(
        self,
        epochs: np.ndarray,
        repeats: int,
        priors: Sequence[ConceptPrior],
        context: NeighbourContext | None = None,
    ) -> np.ndarray:
        """(n_epochs, n_priors) log-likelihood of each epoch (an average of ``repeats`` trials of one image)
        under each concept's Gaussian, in the whitened space; with ``context``, that Gaussian's mean and
        covariance also hold the context's (:class:`NeighbourContext`)."""
        x = self.noise.whiten(epochs)
        if context is not None:  # the context's repetitions are averaged too: covariance / r
            x = x - self.noise.whiten(context.mean[None])
            ctx = np.zeros((0, x.shape[1]))  # a context without spread
            if len(context.factor):
                ctx = self.noise.whiten(context.factor) / np.sqrt(repeats)
            x_ctx, cross, ctx_gram = x @ ctx.T, self._basis @ ctx.T, ctx @ ctx.T
            evoked_ctx = ctx @ self._evoked
        x_proj, x_sq, x_evoked = x @ self._basis.T, (x**2).sum(axis=1), x @ self._evoked
        out = np.empty((len(x), len(priors)))
        for j, p in enumerate(priors):
            coef = np.concatenate([p.early_mean, p.late_mean])  # mean = evoked + coef @ basis
            values, vectors = np.linalg.eigh(p.early_cov)
            mix = linalg.block_diag(  # factor = basis.T @ mix
                vectors * np.sqrt(np.clip(values, 0, None)), np.sqrt(p.late_var) * np.eye(len(p.late_mean))
            )
            mean_proj = self._evoked_proj + self._gram @ coef
            mean_sq = self._evoked @ self._evoked + 2 * coef @ self._evoked_proj + coef @ self._gram @ coef
            sq_norm = x_sq - 2 * (x_evoked + x_proj @ coef) + mean_sq
            proj = (x_proj - mean_proj) @ mix
            gram = mix.T @ self._gram @ mix
            if context is not None:  # factor = [basis.T @ mix, ctx.T]
                proj = np.concatenate([proj, x_ctx - (evoked_ctx + coef @ cross)[None, :]], axis=1)
                own_ctx = mix.T @ cross
                gram = np.block([[gram, own_ctx], [own_ctx.T, ctx_gram]])
            out[:, j] = woodbury_log_likelihood(sq_norm, proj, gram, repeats, x.shape[1])
        if not np.isfinite(out).all():
            raise ValueError("the fair ceiling's log-likelihoods are not all finite")
        return out


def concept_priors(
    truth: dict, table: pd.DataFrame, renders: Mapping[str, np.ndarray], concepts: Sequence[str]
) -> list[ConceptPrior]:
    """The :func:`concept_prior` of each of ``concepts`` in the study ``table`` (its training concepts are
    what can be learned); ``renders``: fresh renders' statistics per concept
    (:func:`concept_render_features`)."""
    shown = table[table["role"] != "catch"]
    training = shown.loc[shown["concept_split"] == "train", ["concept", *ATTRIBUTES]].drop_duplicates()
    attrs = shown.drop_duplicates("concept").set_index("concept")
    missing = sorted({c for c in concepts if c not in renders})
    if missing:
        raise ValueError(f"no fresh renders of concept(s) {missing}; rerun learning_curve_concept_renders")
    return [
        concept_prior(truth, attrs.loc[c, list(ATTRIBUTES)].to_dict(), training, renders[c]) for c in concepts
    ]


def fair_similarity(
    ceiling: FairCeiling,
    truth: dict,
    table: pd.DataFrame,
    renders: Mapping[str, np.ndarray],
    epochs: np.ndarray,
    repeats: int,
    gallery_ids: Sequence[str],
    context: NeighbourContext | None = None,
) -> np.ndarray:
    """(n_epochs, n_gallery) fair-ceiling similarity of ``epochs`` to the images ``gallery_ids`` of the study
    ``table``: the log-likelihood under each image's concept (items of one concept tie), with the epochs'
    ``context`` if any (:meth:`FairCeiling.log_likelihoods`). ``renders``: see :func:`concept_priors`."""
    concept_of = table[table["role"] != "catch"].set_index("image_id")["concept"]
    concepts = concept_of.loc[list(gallery_ids)].to_numpy(str)
    unique = sorted(set(concepts))
    priors = concept_priors(truth, table, renders, unique)
    per_concept = ceiling.log_likelihoods(epochs, repeats, priors, context)
    return per_concept[:, np.searchsorted(np.asarray(unique), concepts)]


def concept_renders_job(
    stimuli_table: Path | str, renders_path: Path | str, n_renders: int, image_size: int, seed: int
) -> pd.DataFrame:
    """The rule's job: :func:`concept_render_features` of every test concept of the study, written."""
    from megdecode.artifacts.learning_curve import write_concept_renders
    from megdecode.artifacts.stimuli import read_stimuli

    table = read_stimuli(stimuli_table)
    test = table[(table["role"] != "catch") & (table["concept_split"] == "test")]
    renders = concept_render_features(
        test.drop_duplicates("concept").sort_values("concept"), n_renders, image_size, seed
    )
    write_concept_renders(renders, renders_path)
    return renders
