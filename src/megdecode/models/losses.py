"""Training losses of the brain module: CLIP (identical targets are not negatives) and CLIP + MSE."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import Tensor
from torch.nn import functional as F


class LossWeights(Protocol):
    """What :func:`combined_loss` reads from the training config (``megdecode.training.TrainingConfig``)."""

    @property
    def clip_weight(self) -> float: ...  # lambda

    @property
    def clip_symmetric(self) -> bool: ...


def target_groups(target: Tensor) -> Tensor:
    """(batch,) int: the same value for trials whose targets are identical (every element equal)."""
    return torch.unique(target.flatten(1), dim=0, return_inverse=True)[1]


def clip_loss(pred: Tensor, target: Tensor, logit_scale: Tensor | float, symmetric: bool = False) -> Tensor:
    """CLIP loss: cross-entropy of ``logit_scale * cos(pred_i, target_j)`` with the matching ``j = i``.

    ``logit_scale`` is the inverse temperature. One-directional (MEG -> image) unless ``symmetric``
    (then the mean with the image -> MEG direction, the transposed logits).

    Identical targets (e.g. per-concept latents shared by the exemplars of a concept) are removed
    from the negatives, not made a soft multi-positive target. MEG -> image: each row is the
    cross-entropy over the batch's *distinct* targets (a target repeated k times is one candidate,
    whose logit column is the same for all k copies), the label the trial's own target: retrieval
    in a gallery of distinct candidates. Image -> MEG: the other trials of the same target are
    removed from a target's row (each trial's prediction is a distinct candidate). A target
    distribution uniform over the k copies would instead merge them into one class with a
    ``log k`` bonus (a floor of ``log k``, not 0, and weaker pushes from the negatives of repeated
    concepts). With all-distinct targets nothing is removed: exactly the standard CLIP loss.
    """
    logits = logit_scale * F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T
    labels = torch.arange(len(pred), device=pred.device)
    groups = target_groups(target)
    same = groups[:, None] == groups[None, :]
    own = labels[:, None] == labels[None, :]
    first = torch.full_like(labels, len(labels)).scatter_reduce(0, groups, labels, reduce="amin")
    representative = first[groups] == labels  # the first trial of each target: its one column
    keep = torch.where(same, own, representative[None, :])
    loss = F.cross_entropy(logits.masked_fill(~keep, float("-inf")), labels)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T.masked_fill(same & ~own, float("-inf")), labels))
    return loss


def combined_loss(
    out: Mapping[str, Tensor], target: Tensor, logit_scale: Tensor, cfg: LossWeights
) -> dict[str, Tensor]:
    """``lambda * CLIP + (1 - lambda) * MSE`` and its parts: CLIP on ``out["clip"]``, MSE on ``out["mse"]``,
    ``lambda = cfg.clip_weight``."""
    clip = clip_loss(out["clip"], target, logit_scale, cfg.clip_symmetric)
    mse = F.mse_loss(out["mse"], target)
    return {"loss": cfg.clip_weight * clip + (1 - cfg.clip_weight) * mse, "clip": clip, "mse": mse}
