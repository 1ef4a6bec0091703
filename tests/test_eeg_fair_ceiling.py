"""The EEG curve's fair ceiling: the MEG fair ceiling with the rapid presentation's neighbours modelled as a
Gaussian (megdecode.learning_curve.eeg.RsvpEpochSimulator.neighbour_context); known answers."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import random_ceiling_parts, study_with_renders
from scipy import stats

from megdecode.config import section_defaults
from megdecode.learning_curve.eeg import RsvpEpochSimulator, co_presence, eeg_grid
from megdecode.learning_curve.epochs import NoiseModel
from megdecode.learning_curve.experiment import world_truth
from megdecode.learning_curve.oracle import (
    ConceptPrior,
    FairCeiling,
    NeighbourContext,
    concept_priors,
    fair_similarity,
)
from megdecode.metrics.retrieval import gallery, sim_scores
from megdecode.simulate.eeg import EegSimParams, neighbour_probability
from megdecode.simulate.stimuli import ATTRIBUTES, early_code, late_code

RECIPE = section_defaults("things_eeg2")["preprocessing"]
EEG = EegSimParams.from_config(section_defaults("eeg")["simulation"])


@pytest.fixture(scope="module")
def study():
    return study_with_renders(24, 8, 4)


def _simulator(study, world: str = "linear", eeg: EegSimParams = EEG, **changes) -> RsvpEpochSimulator:
    params, table, study_truth, _ = study
    params = dataclasses.replace(params, world=world, **changes)
    truth = world_truth(params, table, study_truth, 0)
    return RsvpEpochSimulator(
        params, truth, table, eeg_grid(RECIPE, EEG), 0, "01", eeg, RECIPE["channel_regex"]
    )


def _pool(table: pd.DataFrame) -> list[str]:
    return sorted(table.loc[(table.concept_split == "test") & (table.role == "exp"), "image_id"])


def _pool_priors(sim: RsvpEpochSimulator, study, pool: list[str]) -> list[ConceptPrior]:
    _, table, _, renders = study
    concepts = table.set_index("image_id").loc[pool, "concept"].tolist()
    return concept_priors(sim.truth, table, renders, concepts)


def _point_priors(sim: RsvpEpochSimulator, table: pd.DataFrame, pool: list[str]) -> list[ConceptPrior]:
    """Priors that are each pool image's own codes, without spread (what the image oracle knows)."""
    rows = table.set_index("image_id")
    out = []
    for i in pool:
        z = early_code(sim.truth, i)
        v = late_code(sim.truth, rows.loc[i, "concept"], {a: rows.loc[i, a] for a in ATTRIBUTES})
        out.append(ConceptPrior(z, np.zeros((len(z), len(z))), np.asarray(v, float), 0.0))
    return out


def test_meg_fair_ceiling_is_unchanged_without_a_context():
    """The MEG fair ceiling (no context) gives the values it gave before contexts existed; a context with
    zero mean and no spread gives the same."""
    rng = np.random.default_rng(7)
    noise, evoked, early, late = random_ceiling_parts(rng)
    a = rng.standard_normal((2, 2))
    priors = [
        ConceptPrior(rng.standard_normal(2), a @ a.T, rng.standard_normal(3), 0.5),
        ConceptPrior(rng.standard_normal(2), np.zeros((2, 2)), np.zeros(3), 1.0),
    ]
    epochs = rng.standard_normal((3, 4, 3))
    ceiling = FairCeiling(noise, evoked, early, late)
    got = ceiling.log_likelihoods(epochs, 2, priors)
    before = [  # the implementation before NeighbourContext, same inputs
        [-20.109415472, -31.9993172432],
        [-40.1407137247, -84.2468954357],
        [-32.6158859118, -37.2982496342],
    ]
    np.testing.assert_allclose(got, before, rtol=1e-10)
    for rows in (0, 2):
        empty = NeighbourContext(np.zeros((4, 3)), np.zeros((rows, 4, 3)))
        np.testing.assert_allclose(ceiling.log_likelihoods(epochs, 2, priors, empty), got, rtol=1e-10)


def test_context_likelihood_is_the_dense_gaussian_in_sensor_space():
    """(Sigma + C C^T) / r + B Lambda B^T around evoked + context mean + B coef, up to the whitening's
    constant Jacobian."""
    rng = np.random.default_rng(3)
    noise, evoked, early, late = random_ceiling_parts(rng)
    context = NeighbourContext(rng.standard_normal((4, 3)), rng.standard_normal((5, 4, 3)))
    a = rng.standard_normal((2, 2))
    priors = [
        ConceptPrior(rng.standard_normal(2), a @ a.T, rng.standard_normal(3), 0.5),
        ConceptPrior(rng.standard_normal(2), np.zeros((2, 2)), rng.standard_normal(3), 0.0),
    ]
    epochs = rng.standard_normal((6, 4, 3))
    ceiling = FairCeiling(noise, evoked, early, late)
    sigma = np.kron(noise.mixing @ noise.mixing.T, noise.temporal) + 0.3 * np.eye(12)
    c = context.factor.reshape(5, -1).T
    e, lt = early.reshape(2, -1).T, late.reshape(3, -1).T
    for repeats in (1, 3):
        got = ceiling.log_likelihoods(epochs, repeats, priors, context)
        dense = np.stack(
            [
                stats.multivariate_normal(
                    (evoked + context.mean).ravel() + e @ p.early_mean + lt @ p.late_mean,
                    (sigma + c @ c.T) / repeats + e @ p.early_cov @ e.T + p.late_var * lt @ lt.T,
                ).logpdf(epochs.reshape(6, -1))
                for p in priors
            ],
            axis=1,
        )
        assert np.ptp(got - dense) < 1e-8


def test_co_presence_has_known_values():
    offsets = np.array([-4, -1, 1, 3])
    q = co_presence(EEG, offsets)
    np.testing.assert_allclose(np.diag(q), neighbour_probability(EEG, offsets))
    assert q[1, 2] == pytest.approx((20 - 2) / 20) and q[0, 3] == pytest.approx((20 - 7) / 20)
    np.testing.assert_array_equal(q, q.T)
    assert (co_presence(dataclasses.replace(EEG, sequence_length=1), offsets) == 0).all()


def test_without_noise_or_neighbours_the_eeg_fair_ceiling_ranks_the_true_concept_first(study):
    """A one-image sequence has no neighbours: the context is zero and the ceiling is the MEG one's; with
    noise a million times weaker the true concept's items tie at the top (linear world)."""
    _, table, _, renders = study
    sim = _simulator(study, eeg=dataclasses.replace(EEG, sequence_length=1))
    pool = _pool(table)
    context = sim.neighbour_context(_pool_priors(sim, study, pool))
    assert not context.mean.any() and not context.factor.any()
    quiet = NoiseModel(sim.noise.mixing * 1e-3, sim.noise.temporal, sim.noise.white_var * 1e-6)
    ceiling = FairCeiling(quiet, *sim.code_responses())
    ids = pool
    x = sim.mean_responses(ids)
    got = fair_similarity(ceiling, sim.truth, table, renders, x, 1, ids, context)
    np.testing.assert_allclose(got, fair_similarity(ceiling, sim.truth, table, renders, x, 1, ids), rtol=1e-9)
    concept = table.set_index("image_id").loc[ids, "concept"].to_numpy(str)
    best = got.max(axis=1)
    for i in range(len(ids)):
        same = concept == concept[i]
        assert (got[i, same] == best[i]).all() and (got[i, ~same] < best[i]).all()
    np.testing.assert_allclose(sim_scores(got, np.arange(len(ids)))["top1_acc"], 1 / 4)  # 4 tied items


def test_neighbour_context_holds_the_moments_of_the_simulated_neighbours(study):
    """With each pool image's own codes as its prior, the context's mean is the image oracle's expected
    neighbour response, and its covariance that of the neighbours the simulator draws (unit gain, no shift:
    gain and latency jitter off), checked on random directions by Monte Carlo."""
    _, table, _, _ = study
    sim = _simulator(study, gain_sd=0.0, latency_jitter_sd=0.0)
    pool = _pool(table)
    context = sim.neighbour_context(_point_priors(sim, table, pool))
    np.testing.assert_allclose(context.mean, sim.context_mean(pool), atol=1e-9 * np.abs(context.mean).max())
    n = 3000
    ids = [pool[0]] * n
    with_neighbours, _ = sim.draw_rsvp(ids, [np.random.default_rng(k) for k in range(n)], [pool] * n)
    alone, _ = sim.draw(ids, [np.random.default_rng(k) for k in range(n)])
    neighbours = (with_neighbours.astype(float) - alone).reshape(n, -1)
    np.testing.assert_allclose(
        neighbours.mean(axis=0), context.mean.ravel(), atol=0.1 * neighbours.std(axis=0).max()
    )
    directions = np.random.default_rng(0).standard_normal((5, neighbours.shape[1]))
    factor = context.factor.reshape(len(context.factor), -1)
    expected = ((directions @ factor.T) ** 2).sum(axis=1)
    np.testing.assert_allclose((neighbours @ directions.T).var(axis=0), expected, rtol=0.1)


def _ceiling_top5(study, world: str, sequence_length: int, context: bool) -> float:
    _, table, _, renders = study
    sim = _simulator(study, world, dataclasses.replace(EEG, sequence_length=sequence_length))
    pool = _pool(table)
    n = 4 * len(pool)
    ids = pool * 4
    epochs, _ = sim.draw_rsvp(ids, [np.random.default_rng(k) for k in range(n)], [pool] * n)
    ctx = sim.neighbour_context(_pool_priors(sim, study, pool)) if context else None
    ceiling = FairCeiling(sim.noise, *sim.code_responses())
    gallery_ids, target = gallery(ids)
    scores = fair_similarity(ceiling, sim.truth, table, renders, epochs, 1, gallery_ids, ctx)
    return float(sim_scores(scores, target)["top5_acc"].mean())


def test_neighbours_do_not_help_and_modelling_them_does_not_hurt(study):
    """The same trials (own response and noise) with and without neighbours: the neighbours never raise the
    ceiling; ignoring them (no context) does not beat modelling them."""
    alone = _ceiling_top5(study, "linear", 1, True)
    modelled = _ceiling_top5(study, "linear", EEG.sequence_length, True)
    ignored = _ceiling_top5(study, "linear", EEG.sequence_length, False)
    assert alone >= modelled >= ignored


def test_eeg_fair_ceiling_never_reads_the_pools_own_codes_or_images(study):
    """Changing the test concepts' own codes and the test images' statistics (the neighbours' pool) leaves
    the neighbours' context and the EEG fair ceiling unchanged, and moves the image oracle's context."""
    params, table, study_truth, renders = study
    sim = _simulator(study, "nonlinear")
    truth = copy.deepcopy(sim.truth)
    rng = np.random.default_rng(5)
    test = table[(table.concept_split == "test") & (table.role != "catch")]
    for concept in test.concept.unique():
        truth["components"]["late"]["concept_codes"][concept] = rng.standard_normal(20).tolist()
    for image_id in test.image_id:
        truth["image_features"][image_id] = rng.uniform(0, 1, 8).tolist()
    changed = RsvpEpochSimulator(
        dataclasses.replace(params, world="nonlinear"), truth, table, sim.grid, 0, "01", EEG,
        RECIPE["channel_regex"],
    )  # fmt: skip
    pool = _pool(table)
    before, after = (s.neighbour_context(_pool_priors(s, study, pool)) for s in (sim, changed))
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.factor, after.factor)
    epochs, _ = sim.draw_rsvp(pool, [np.random.default_rng(k) for k in range(len(pool))], [pool] * len(pool))
    scores = [
        fair_similarity(
            FairCeiling(s.noise, *s.code_responses()), s.truth, table, renders, epochs, 1, pool, c
        )
        for s, c in ((sim, before), (changed, after))
    ]
    np.testing.assert_array_equal(*scores)
    assert not np.allclose(sim.context_mean(pool), changed.context_mean(pool))
