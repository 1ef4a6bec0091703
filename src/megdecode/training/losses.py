"""Losses of the brain module: CLIP (contrastive) on one head, MSE on the other."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch.nn import functional as F


def clip_loss(pred: Tensor, target: Tensor, logit_scale: Tensor | float, symmetric: bool = False) -> Tensor:
    """CLIP loss: cross-entropy of ``logit_scale * cos(pred_i, target_j)`` with the matching ``j = i``.

    ``logit_scale`` is the inverse temperature. One-directional (MEG -> image) unless ``symmetric``.
    """
    logits = logit_scale * F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T
    labels = torch.arange(len(pred), device=pred.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
    return loss


def combined_loss(
    out: Mapping[str, Tensor], target: Tensor, logit_scale: Tensor, clip_weight: float, symmetric: bool
) -> dict[str, Tensor]:
    """``clip_weight * CLIP(out['clip']) + (1 - clip_weight) * MSE(out['mse'])`` and its parts."""
    clip = clip_loss(out["clip"], target, logit_scale, symmetric)
    mse = F.mse_loss(out["mse"], target)
    return {"loss": clip_weight * clip + (1 - clip_weight) * mse, "clip": clip, "mse": mse}
