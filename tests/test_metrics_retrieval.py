"""Retrieval metrics on hand-made similarity matrices with known ranks, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from megdecode.metrics import retrieval as rm

# 3 items x 4 candidates; true candidate of item i is column target[i].
SIM = np.array(
    [
        [0.9, 0.1, 0.2, 0.3],  # true col 0 is best -> rank 1
        [0.5, 0.4, 0.8, 0.1],  # true col 1: two higher (0.5, 0.8) -> rank 3
        [0.2, 0.2, 0.2, 0.2],  # all tied: mean position (1+2+3+4)/4 = 2.5
    ]
)
TARGET = np.array([0, 1, 3])


def test_ranks_known_values() -> None:
    np.testing.assert_allclose(rm.target_ranks(SIM, TARGET), [1.0, 3.0, 2.5])
    np.testing.assert_allclose(rm.relative_ranks(SIM, TARGET), [0.25, 0.75, 0.625])
    assert rm.median_rank(SIM, TARGET) == pytest.approx(0.625)


def test_topk_known_values_with_ties() -> None:
    # item 3 is a 4-way tie: P(top1) = 1/4, P(top2) = 2/4
    np.testing.assert_allclose(rm.topk_hits(SIM, TARGET, 1), [1.0, 0.0, 0.25])
    np.testing.assert_allclose(rm.topk_hits(SIM, TARGET, 2), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(rm.topk_hits(SIM, TARGET, 3), [1.0, 1.0, 0.75])
    assert rm.top1_acc(SIM, TARGET) == pytest.approx((1 + 0 + 0.25) / 3)
    assert rm.top5_acc(SIM, TARGET) == pytest.approx(1.0)  # gallery of 4 < 5


def test_partial_tie_above_target() -> None:
    # one strictly better candidate, target tied with one other -> positions 2 or 3
    sim = np.array([[0.9, 0.5, 0.5, 0.1]])
    assert rm.target_ranks(sim, np.array([1]))[0] == pytest.approx(2.5)
    assert rm.topk_hits(sim, np.array([1]), 1)[0] == 0.0
    assert rm.topk_hits(sim, np.array([1]), 2)[0] == pytest.approx(0.5)


def test_constant_prediction_scores_exactly_chance() -> None:
    n = 50
    sim = np.zeros((n, n))
    target = np.arange(n)
    assert rm.top5_acc(sim, target) == pytest.approx(rm.chance_topk_acc(5, n))
    assert rm.median_rank(sim, target) == pytest.approx(rm.chance_median_rank(n))


def test_perfect_and_worst() -> None:
    n = 10
    sim = np.eye(n)
    target = np.arange(n)
    assert rm.top1_acc(sim, target) == 1.0
    assert rm.median_rank(sim, target) == pytest.approx(1 / n)
    assert rm.median_rank(-sim, target) == pytest.approx(1.0)


def test_shuffled_labels_stay_at_chance() -> None:
    rng = np.random.default_rng(0)
    n, d = 400, 16
    cand = rng.standard_normal((n, d))
    pred = cand + 0.1 * rng.standard_normal((n, d))  # near-perfect decoder
    sim = rm.cosine_similarity(pred, cand)
    assert rm.top5_acc(sim, np.arange(n)) > 0.95
    shuffled = rm.cosine_similarity(pred[rng.permutation(n)], cand)
    assert abs(rm.top5_acc(shuffled, np.arange(n)) - 5 / n) < 0.02
    assert abs(rm.median_rank(shuffled, np.arange(n)) - 0.5) < 0.08


def test_cosine_similarity() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(rm.cosine_similarity(a, b), [[1, 0], [np.sqrt(0.5), np.sqrt(0.5)]])
    with pytest.raises(ValueError, match="dimension mismatch"):
        rm.cosine_similarity(a, np.ones((2, 3)))


def test_chance_levels() -> None:
    assert rm.chance_topk_acc(5, 200) == pytest.approx(0.025)
    assert rm.chance_topk_acc(5, 2400) == pytest.approx(5 / 2400)
    assert rm.chance_topk_acc(5, 3) == 1.0
    assert rm.chance_median_rank(4) == pytest.approx(0.625)


def test_bootstrap_ci_seeded_and_covers() -> None:
    x = np.random.default_rng(1).random(300)
    ci1 = rm.bootstrap_ci(x, np.mean, 500, 0.95, np.random.default_rng(7))
    ci2 = rm.bootstrap_ci(x, np.mean, 500, 0.95, np.random.default_rng(7))
    assert ci1 == ci2
    assert ci1[0] < x.mean() < ci1[1]
    assert 0.02 < ci1[1] - ci1[0] < 0.15  # ~ 4 * 0.29 / sqrt(300) = 0.066
    lo, hi = rm.bootstrap_ci(x, np.median, 200, 0.95, np.random.default_rng(7))
    assert lo <= np.median(x) <= hi
    with pytest.raises(ValueError, match="seeded"):
        rm.bootstrap_ci(x)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="out of range"):
        rm.target_ranks(SIM, np.array([0, 1, 4]))
    with pytest.raises(ValueError):
        rm.topk_hits(SIM, TARGET, 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    "metric",
    [
        rm.target_ranks,
        rm.relative_ranks,
        rm.median_rank,
        rm.top1_acc,
        rm.top5_acc,
        lambda s, t: rm.topk_hits(s, t, 2),
        lambda s, t: rm.topk_acc(s, t, 3),
    ],
)
def test_non_finite_similarities_raise_instead_of_scoring(metric, bad) -> None:
    # a NaN row compares neither greater nor equal: it used to score a perfect rank and top-k 1.0
    sim = SIM.copy()
    sim[1, 2] = bad
    with pytest.raises(rm.NonFiniteError, match=r"similarities contain 1 NaN or infinite.*first: row 1"):
        metric(sim, TARGET)
    sim[:] = np.nan
    with pytest.raises(rm.NonFiniteError):
        metric(sim, TARGET)


def test_non_finite_predictions_or_candidates_raise() -> None:
    pred, cand = np.ones((3, 4)), np.eye(4)
    pred[2] = np.nan
    with pytest.raises(rm.NonFiniteError, match=r"predictions contain 4 NaN.*1 of 3 rows \(first: row 2\)"):
        rm.cosine_similarity(pred, cand)
    cand[0, 0] = np.inf
    with pytest.raises(rm.NonFiniteError, match="candidate latents"):
        rm.cosine_similarity(np.ones((3, 4)), cand)


def test_bootstrap_of_non_finite_scores_raises() -> None:
    with pytest.raises(rm.NonFiniteError, match="per-item scores"):
        rm.bootstrap_ci(np.array([0.5, np.nan, 1.0]), rng=np.random.default_rng(0))


def test_gallery_item_and_chance_scores_on_known_answers() -> None:
    gallery_ids, target = rm.gallery(["b", "a", "b", "c"])
    assert gallery_ids.tolist() == ["a", "b", "c"] and target.tolist() == [1, 0, 1, 2]
    scores = rm.sim_scores(np.eye(3)[target], target, topk=(1, 2))
    assert scores["top1_acc"].tolist() == [1.0] * 4 and scores["median_rank"].tolist() == [1 / 3] * 4
    reversed_sim = -np.eye(3)[target]  # the true image always scores lowest
    assert rm.sim_scores(reversed_sim, target, topk=(2,))["top2_acc"].tolist() == [0.0] * 4
    candidates = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    items = rm.item_scores(candidates[target] * 2.0, ["b", "a", "b", "c"], candidates, topk=(1,))
    assert items["top1_acc"].tolist() == [1.0] * 4
    assert rm.chance_level("top5_acc", 10) == 0.5 and rm.chance_level("median_rank", 3) == 4 / 6
    with pytest.raises(ValueError, match="unknown retrieval metric"):
        rm.chance_level("pixcorr", 3)
