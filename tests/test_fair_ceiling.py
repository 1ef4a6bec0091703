"""The learning curve's fair ceiling (megdecode.learning_curve.oracle): known answers and what it may read."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import random_ceiling_parts, study_with_renders
from scipy import stats

from megdecode.artifacts.learning_curve import read_concept_renders, write_concept_renders
from megdecode.learning_curve.epochs import EpochGrid, EpochSimulator, NoiseModel
from megdecode.learning_curve.experiment import world_truth
from megdecode.learning_curve.oracle import (
    ConceptPrior,
    FairCeiling,
    concept_prior,
    concept_render_features,
    fair_similarity,
    gaussian_log_likelihood,
    oracle_similarity,
)
from megdecode.metrics.retrieval import gallery, sim_scores
from megdecode.simulate.stimuli import ATTRIBUTES, early_code, late_code

GRID = EpochGrid(tmin=-0.1, tmax=0.5, sfreq=60.0, l_freq=0.1, h_freq=20.0)
N_RENDERS = 40


@pytest.fixture(scope="module")
def study():
    return study_with_renders(12, 4, 2)


def _simulator(study, world: str, truth: dict | None = None) -> EpochSimulator:
    params, table, study_truth, _ = study
    params = dataclasses.replace(params, world=world)
    truth = truth or world_truth(params, table, study_truth, 0)
    return EpochSimulator(params, truth, table, GRID, 0, "01")


def _quiet(noise: NoiseModel) -> NoiseModel:
    """The same noise, a million times weaker in power."""
    return NoiseModel(noise.mixing * 1e-3, noise.temporal, noise.white_var * 1e-6)


def _test_images(table: pd.DataFrame, role: str) -> list[str]:
    return sorted(table.loc[(table.concept_split == "test") & (table.role == role), "image_id"])


@pytest.mark.parametrize("world", ["linear", "nonlinear"])
def test_code_responses_reproduce_the_noiseless_responses(study, world):
    sim = _simulator(study, world)
    table = study[1].set_index("image_id")
    evoked, early, late = sim.code_responses()
    ids = table.index[table.role != "catch"][:5]
    for image_id, expected in zip(ids, sim.mean_responses(ids), strict=True):
        row = table.loc[image_id]
        z = early_code(sim.truth, image_id)
        v = late_code(sim.truth, row.concept, {a: row[a] for a in ATTRIBUTES})
        got = evoked + np.tensordot(z, early, 1) + np.tensordot(v, late, 1)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


def test_woodbury_likelihood_equals_the_dense_gaussian():
    rng = np.random.default_rng(0)
    x, mean, factor = rng.standard_normal((5, 12)), rng.standard_normal(12), rng.standard_normal((12, 3))
    for repeats in (1, 3):
        dense = stats.multivariate_normal(mean, np.eye(12) / repeats + factor @ factor.T).logpdf(x)
        np.testing.assert_allclose(gaussian_log_likelihood(x, mean, factor, repeats), dense, rtol=1e-10)


def test_fair_ceiling_is_the_dense_likelihood_of_its_covariance_in_sensor_space():
    """Sigma / r + B Lambda B^T with the noise S (x) T + s2 I, up to the whitening's constant Jacobian."""
    rng = np.random.default_rng(1)
    noise, evoked, early, late = random_ceiling_parts(rng)
    a = rng.standard_normal((2, 2))
    priors = [
        ConceptPrior(rng.standard_normal(2), a @ a.T, rng.standard_normal(3), 0.5),
        ConceptPrior(rng.standard_normal(2), np.zeros((2, 2)), rng.standard_normal(3), 0.0),
        ConceptPrior(rng.standard_normal(2), np.diag([0.2, 0.0]), np.zeros(3), 1.0),
    ]
    epochs, repeats = rng.standard_normal((6, 4, 3)), 2
    got = FairCeiling(noise, evoked, early, late).log_likelihoods(epochs, repeats, priors)
    sigma = np.kron(noise.mixing @ noise.mixing.T, noise.temporal) + 0.3 * np.eye(12)
    e, lt = early.reshape(2, -1).T, late.reshape(3, -1).T
    dense = np.stack(
        [
            stats.multivariate_normal(
                evoked.ravel() + e @ p.early_mean + lt @ p.late_mean,
                sigma / repeats + e @ p.early_cov @ e.T + p.late_var * lt @ lt.T,
            ).logpdf(epochs.reshape(6, -1))
            for p in priors
        ],
        axis=1,
    )
    diff = got - dense
    assert np.ptp(diff) < 1e-8  # one constant: log |det W| of the whitening


def test_without_noise_the_fair_ceiling_ranks_the_true_concept_first(study):
    """Linear world: every late code is learnable, so an exemplar's response differs from its concept's
    template only along the early codes' spread, and from any other concept's also along the late codes."""
    _, table, _, renders = study
    sim = _simulator(study, "linear")
    ceiling = FairCeiling(_quiet(sim.noise), *sim.code_responses())
    ids = _test_images(table, "exp") + _test_images(table, "test")
    sim_matrix = fair_similarity(ceiling, sim.truth, table, renders, sim.mean_responses(ids), 1, ids)
    concept = table.set_index("image_id").loc[ids, "concept"].to_numpy(str)
    best = sim_matrix.max(axis=1)
    for i in range(len(ids)):
        same = concept == concept[i]
        assert (sim_matrix[i, same] == best[i]).all()  # the concept's items tie, at the top
        assert (sim_matrix[i, ~same] < best[i]).all()
    scores = sim_scores(sim_matrix, np.arange(len(ids)))
    np.testing.assert_allclose(scores["top1_acc"], 1 / 3)  # 3 tied items per concept: expected hits


def test_linear_world_without_exemplar_spread_is_the_image_oracle_on_concepts(study):
    """Renders all equal to the test image: the template is that image's noiseless response, the covariance
    the noise's / r, so the fair log-likelihood is r/2 x the oracle's similarity plus one constant."""
    _, table, _, _ = study
    sim = _simulator(study, "linear")
    ids = _test_images(table, "test")  # one per test concept
    own = {
        table.set_index("image_id").loc[i, "concept"]: np.tile(sim.truth["image_features"][i], (3, 1))
        for i in ids
    }
    rng = np.random.default_rng(2)
    epochs = sim.mean_responses(ids) + sim.noise.sample(len(ids), rng)
    ceiling = FairCeiling(sim.noise, *sim.code_responses())
    for repeats in (1, 2):
        fair = fair_similarity(ceiling, sim.truth, table, own, epochs, repeats, ids)
        oracle = oracle_similarity(sim.noise, epochs, sim.mean_responses(ids))
        diff = fair - repeats / 2 * oracle
        assert np.ptp(diff) < 1e-6 * np.abs(fair).max()
        np.testing.assert_array_equal(fair.argsort(axis=1), oracle.argsort(axis=1))


def test_fair_ceiling_never_reads_a_test_concepts_code_or_a_test_image(study):
    """Changing what no decoder can learn (test concepts' own codes, pair codes no training concept has, the
    test images' statistics) leaves the fair ceiling unchanged and moves the image oracle."""
    _, table, _, renders = study
    sim = _simulator(study, "nonlinear")
    truth = copy.deepcopy(sim.truth)
    rng = np.random.default_rng(3)
    test = table[(table.concept_split == "test") & (table.role != "catch")]
    train_pairs = set(
        zip(*[table.loc[table.concept_split == "train", a] for a in ("shape", "colour")], strict=True)
    )
    late = truth["components"]["late"]
    unseen = 0
    for row in test.drop_duplicates("concept").itertuples():
        late["concept_codes"][row.concept] = rng.standard_normal(20).tolist()
        if (row.shape, row.colour) not in train_pairs:
            late["pair_codes"][row.shape][row.colour] = rng.standard_normal(20).tolist()
            unseen += 1
    for image_id in test.image_id:
        truth["image_features"][image_id] = rng.uniform(0, 1, 8).tolist()
    assert unseen > 0
    changed = _simulator(study, "nonlinear", truth)
    ids = sorted(test.image_id)
    epochs = sim.mean_responses(ids) + sim.noise.sample(len(ids), rng)
    before = fair_similarity(
        FairCeiling(sim.noise, *sim.code_responses()), sim.truth, table, renders, epochs, 1, ids
    )
    after = fair_similarity(
        FairCeiling(changed.noise, *changed.code_responses()), truth, table, renders, epochs, 1, ids
    )
    np.testing.assert_array_equal(before, after)
    moved = oracle_similarity(sim.noise, epochs, changed.mean_responses(ids))
    assert not np.allclose(moved, oracle_similarity(sim.noise, epochs, sim.mean_responses(ids)))


def test_concept_priors_marginalise_what_training_concepts_do_not_show(study):
    params, table, study_truth, renders = study
    nonlinear = world_truth(dataclasses.replace(params, world="nonlinear"), table, study_truth, 0)
    training = table[table.concept_split == "train"].drop_duplicates("concept")
    concept = sorted(renders)[0]
    attrs = table.loc[table.concept == concept, list(ATTRIBUTES)].iloc[0].to_dict()
    codes = nonlinear["components"]["late"]
    # the prior variance is the variance the codes were drawn with
    entries = np.concatenate([np.ravel(v) for v in codes["concept_codes"].values()])
    assert np.var(entries) == pytest.approx(0.5, abs=0.15)
    same_pair = (training["shape"] == attrs["shape"]) & (training["colour"] == attrs["colour"])
    with_pair = training if same_pair.any() else pd.concat([training, pd.DataFrame([attrs])])
    without_pair = training[~same_pair]
    known = concept_prior(nonlinear, attrs, with_pair, renders[concept])
    unknown = concept_prior(nonlinear, attrs, without_pair, renders[concept])
    np.testing.assert_array_equal(known.late_mean, codes["pair_codes"][attrs["shape"]][attrs["colour"]])
    assert known.late_var == pytest.approx(0.5) and unknown.late_var == pytest.approx(1.0)
    assert not unknown.late_mean.any()
    linear = concept_prior(study_truth, attrs, training, renders[concept])
    np.testing.assert_allclose(linear.late_mean, late_code(study_truth, None, attrs))
    assert linear.late_var == 0.0  # each test attribute value occurs in a training concept
    no_shape = concept_prior(
        study_truth, attrs, training[training["shape"] != attrs["shape"]], renders[concept]
    )
    assert no_shape.late_var == pytest.approx(1 / 3)
    z = np.stack([early_code({**study_truth, "image_features": {"r": f}}, "r") for f in renders[concept]])
    np.testing.assert_allclose(linear.early_mean, z.mean(axis=0))
    np.testing.assert_allclose(linear.early_cov, np.cov(z.T))
    assert np.linalg.matrix_rank(linear.early_cov) == 8  # exemplars spread along every early code


def test_concept_renders_are_keyed_by_concept_and_round_trip(study, tmp_path):
    _, table, _, renders = study
    test = table[(table.role != "catch") & (table.concept_split == "test")].drop_duplicates("concept")
    one = concept_render_features(test.iloc[[1]], N_RENDERS, 32, 0)
    np.testing.assert_array_equal(one[one.columns[2:]].to_numpy(float), renders[test.concept.iloc[1]])
    path = tmp_path / "renders.tsv"
    write_concept_renders(concept_render_features(test, 3, 32, 0), path)
    back = read_concept_renders(path)
    assert sorted(back) == sorted(test.concept) and all(v.shape == (3, 8) for v in back.values())
    pd.DataFrame({"concept": ["a"]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match="learning_curve_concept_renders"):
        read_concept_renders(path)


def test_gallery_items_of_one_concept_tie(study):
    _, table, _, renders = study
    sim = _simulator(study, "nonlinear")
    ids = _test_images(table, "exp")
    epochs = sim.mean_responses(ids) + sim.noise.sample(len(ids), np.random.default_rng(4))
    gallery_ids, target = gallery(ids)
    fair = fair_similarity(
        FairCeiling(sim.noise, *sim.code_responses()), sim.truth, table, renders, epochs, 1, gallery_ids
    )
    concept = table.set_index("image_id").loc[gallery_ids, "concept"].to_numpy(str)
    for c in set(concept):
        cols = fair[:, concept == c]
        assert (cols == cols[:, :1]).all()
    assert np.isfinite(fair).all()
