"""Retrieval metrics: which candidate image does a predicted latent pick out of a gallery?

Conventions (all functions are pure and take the same inputs):

- ``sim`` is an (items, gallery) similarity matrix, ``target`` the column index of each item's true image.
- Ranks are 1-based (1 = the true image is the most similar candidate).
- **Ties** are resolved by the expectation under uniformly random tie-breaking: if ``g`` candidates score
  strictly higher than the true image and ``t`` candidates (the true one included) score exactly the same,
  the true image sits uniformly at positions ``g + 1 .. g + t``. Its rank is then ``g + (t + 1) / 2`` and its
  top-k hit probability ``clip((k - g) / t, 0, 1)``. A constant prediction therefore scores exactly chance,
  never a perfect 1.0 or an unfair 0.0.
- ``median_rank`` is the *relative* rank (rank / gallery size), lower is better; chance is
  ``(n + 1) / (2 n)``, perfect is ``1 / n``.
- **Non-finite values are errors**, never scores: a NaN compares neither greater nor equal, so it would
  count as a perfect rank. Every function raises :class:`NonFiniteError` on NaN or infinite inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "NonFiniteError",
    "bootstrap_ci",
    "chance_level",
    "check_finite",
    "chance_median_rank",
    "chance_topk_acc",
    "cosine_similarity",
    "gallery",
    "item_scores",
    "median_rank",
    "relative_ranks",
    "sim_scores",
    "target_ranks",
    "top1_acc",
    "top5_acc",
    "topk_acc",
    "topk_hits",
]


class NonFiniteError(ValueError):
    """NaN or infinite values where a metric needs numbers; the message says where."""


def check_finite(
    values: np.ndarray, what: str, consequence: str = "a non-finite value has no rank and cannot be scored"
) -> None:
    """Raise :class:`NonFiniteError` naming ``what``, the count and the first bad row of ``values``."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc" or np.isfinite(values).all():
        return
    bad = ~np.isfinite(values.reshape(len(values), -1) if values.ndim > 1 else values)
    rows = np.flatnonzero(bad.any(axis=1) if bad.ndim > 1 else bad)
    raise NonFiniteError(
        f"{what} contain {int(bad.sum())} NaN or infinite value(s) in {len(rows)} of {len(values)} rows "
        f"(first: row {rows[0]}); {consequence}"
    )


def cosine_similarity(pred: np.ndarray, candidates: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Cosine similarity between each row of ``pred`` (n, d) and each row of ``candidates`` (m, d)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    candidates = np.asarray(candidates, dtype=np.float64).reshape(len(candidates), -1)
    check_finite(pred, "predictions")
    check_finite(candidates, "candidate latents")
    if pred.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"dimension mismatch: predictions have {pred.shape[1]}, candidates {candidates.shape[1]}"
        )
    pn = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), eps)
    cn = candidates / np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), eps)
    return pn @ cn.T


def _greater_and_tied(sim: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sim = np.asarray(sim, dtype=np.float64)
    target = np.asarray(target, dtype=np.int64)
    if sim.ndim != 2 or target.shape != (sim.shape[0],):
        raise ValueError(f"need sim (n, m) and target (n,), got {sim.shape} and {target.shape}")
    if target.size and (target.min() < 0 or target.max() >= sim.shape[1]):
        raise ValueError(f"target index out of range for a gallery of {sim.shape[1]}")
    check_finite(sim, "similarities")
    true = sim[np.arange(len(sim)), target][:, None]
    greater = (sim > true).sum(axis=1)
    tied = (sim == true).sum(axis=1)  # includes the true candidate itself
    return greater, tied


def target_ranks(sim: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of the true candidate per item; ties get the mean of the tied positions."""
    greater, tied = _greater_and_tied(sim, target)
    return greater + (tied + 1) / 2.0


def relative_ranks(sim: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rank of the true candidate divided by the gallery size (1/m best, 1 worst)."""
    return target_ranks(sim, target) / np.asarray(sim).shape[1]


def topk_hits(sim: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """Per item, the probability that the true candidate is among the top ``k`` (random tie-breaking)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    greater, tied = _greater_and_tied(sim, target)
    return np.clip((k - greater) / tied, 0.0, 1.0)


def topk_acc(sim: np.ndarray, target: np.ndarray, k: int) -> float:
    """Top-k accuracy (higher is better)."""
    return float(topk_hits(sim, target, k).mean())


def top1_acc(sim: np.ndarray, target: np.ndarray) -> float:
    """Top-1 accuracy (higher is better)."""
    return topk_acc(sim, target, 1)


def top5_acc(sim: np.ndarray, target: np.ndarray) -> float:
    """Top-5 accuracy (higher is better)."""
    return topk_acc(sim, target, 5)


def median_rank(sim: np.ndarray, target: np.ndarray) -> float:
    """Median relative rank of the true candidate (lower is better)."""
    return float(np.median(relative_ranks(sim, target)))


def chance_topk_acc(k: int, gallery_size: int) -> float:
    """Expected top-k accuracy of a random ranking."""
    return min(k, gallery_size) / gallery_size


def chance_median_rank(gallery_size: int) -> float:
    """Expected relative rank of a random ranking, (n + 1) / (2 n)."""
    return (gallery_size + 1) / (2 * gallery_size)


def gallery(image_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The gallery of a test set (its unique images, sorted) and each item's column in it."""
    gallery_ids, target = np.unique(np.asarray(image_ids).astype(str), return_inverse=True)
    return gallery_ids, target.reshape(-1)


def item_scores(
    pred: np.ndarray,
    image_ids: Sequence[str],
    candidates: np.ndarray,
    topk: Sequence[int] = (1, 5),
) -> dict[str, np.ndarray]:
    """Per-item retrieval scores of ``pred`` vs ``candidates`` (rows = the sorted unique ``image_ids``)."""
    _, target = gallery(image_ids)
    return sim_scores(cosine_similarity(pred, candidates), target, topk)


def sim_scores(sim: np.ndarray, target: np.ndarray, topk: Sequence[int] = (1, 5)) -> dict[str, np.ndarray]:
    """Per-item top-k hits and relative ranks from a similarity matrix."""
    scores = {f"top{k}_acc": topk_hits(sim, target, k) for k in topk}
    scores["median_rank"] = relative_ranks(sim, target)
    return scores


def chance_level(metric: str, gallery_size: int) -> float:
    """Chance value of a retrieval ``metric`` (``top{k}_acc`` or ``median_rank``) for a gallery size."""
    if metric == "median_rank":
        return chance_median_rank(gallery_size)
    if metric.startswith("top") and metric.endswith("_acc"):
        return chance_topk_acc(int(metric[3:-4]), gallery_size)
    raise ValueError(f"unknown retrieval metric {metric!r}")


def bootstrap_ci(
    per_item: np.ndarray,
    statistic: Callable[..., np.ndarray] = np.mean,
    n_boot: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over items (axis 0 of ``per_item``).

    ``statistic`` must accept ``axis=1`` (``np.mean``, ``np.median``). Pass a seeded ``rng``:
    the same generator state gives the same interval.
    """
    per_item = np.asarray(per_item, dtype=np.float64)
    if per_item.ndim != 1 or per_item.size == 0:
        raise ValueError(f"need a non-empty 1-D array of per-item scores, got shape {per_item.shape}")
    check_finite(per_item, "per-item scores")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if rng is None:
        raise ValueError("pass a seeded numpy Generator (rng=np.random.default_rng(seed))")
    if n_boot < 1:
        value = float(statistic(per_item))
        return value, value
    idx = rng.integers(0, per_item.size, size=(n_boot, per_item.size))
    stats = statistic(per_item[idx], axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)
