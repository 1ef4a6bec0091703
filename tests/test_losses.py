"""CLIP loss with repeated targets (known answers) and the combined CLIP + MSE loss."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from megdecode.models.losses import clip_loss, combined_loss, target_groups


def _standard_clip(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    logits = scale * F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T
    return F.cross_entropy(logits, torch.arange(len(pred)))


@pytest.mark.parametrize("symmetric", [False, True])
def test_clip_loss_with_distinct_targets_is_exactly_the_standard_cross_entropy(symmetric):
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(16, 12, generator=gen), torch.randn(16, 12, generator=gen)
    scale = torch.tensor(14.3)
    logits = scale * F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T
    labels = torch.arange(16)
    expected = F.cross_entropy(logits, labels)
    if symmetric:
        expected = 0.5 * (expected + F.cross_entropy(logits.T, labels))
    assert torch.equal(clip_loss(pred, target, scale, symmetric), expected)


def test_clip_loss_with_repeated_targets_hand_computed():
    """Trials 0 and 1 share a target (e1), trial 2 has e2; preds e1, e2, e1; scale 2.

    Logits (rows: preds, columns: targets) are [[2, 2, 0], [0, 0, 2], [2, 2, 0]]. MEG -> image: each
    row over the distinct targets e1 (columns 0 and 1, counted once) and e2.
    """
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    e = math.exp
    rows = [
        -2 + math.log(e(2) + e(0)),  # row 0 without column 1: [2, -, 0]
        -0 + math.log(e(0) + e(2)),  # row 1 without column 0: [-, 0, 2]
        -0 + math.log(e(2) + e(0)),  # row 2: e1 is one negative, not two
    ]
    assert float(clip_loss(pred, target, 2.0)) == pytest.approx(sum(rows) / 3, abs=1e-6)
    # image -> MEG rows (targets) over the 3 predictions: [[2, 0, 2], [2, 0, 2], [0, 2, 0]]; the other
    # trial of the same target is removed from rows 0 and 1
    columns = [
        -2 + math.log(e(2) + e(2)),  # [2, -, 2]
        -0 + math.log(e(0) + e(2)),  # [-, 0, 2]
        -0 + math.log(e(0) + e(2) + e(0)),  # [0, 2, 0]: both predictions of e1 are negatives
    ]
    both = 0.5 * (sum(rows) + sum(columns)) / 3
    assert float(clip_loss(pred, target, 2.0, symmetric=True)) == pytest.approx(both, abs=1e-6)
    # the standard loss counts the shared target as a negative: a larger value
    standard = [
        -2 + math.log(2 * e(2) + e(0)),
        -0 + math.log(2 * e(0) + e(2)),
        -0 + math.log(2 * e(2) + e(0)),
    ]
    assert float(_standard_clip(pred, target, 2.0)) == pytest.approx(sum(standard) / 3, abs=1e-6)
    assert sum(standard) / 3 > sum(rows) / 3 + 0.1


def test_clip_loss_repeated_targets_have_finite_gradients_and_grouping():
    gen = torch.Generator().manual_seed(1)
    concepts = torch.randn(3, 6, generator=gen)
    which = torch.tensor([0, 1, 0, 2, 1, 0])
    target = concepts[which]
    groups = target_groups(target)
    assert torch.equal(groups[:, None] == groups[None, :], which[:, None] == which[None, :])
    pred = torch.randn(6, 6, generator=gen, requires_grad=True)
    scale = torch.tensor(5.0, requires_grad=True)
    loss = clip_loss(pred, target, scale, symmetric=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all() and torch.isfinite(scale.grad)
    # MEG -> image: the cross-entropy over the batch's distinct targets, the label a trial's concept
    logits = 5.0 * F.normalize(pred, dim=1) @ F.normalize(concepts, dim=1).T
    torch.testing.assert_close(clip_loss(pred, target, 5.0), F.cross_entropy(logits, which))
    # image -> MEG: each target row over all predictions, the other trials of its concept removed
    t_logits = 5.0 * F.normalize(target, dim=1) @ F.normalize(pred, dim=1).T
    rows = []
    for i in range(6):
        keep = (which != which[i]) | (torch.arange(6) == i)
        rows.append(-t_logits[i, i] + torch.logsumexp(t_logits[i, keep], dim=0))
    backward = 0.5 * (F.cross_entropy(logits, which) + torch.stack(rows).mean())
    torch.testing.assert_close(clip_loss(pred, target, 5.0, symmetric=True), backward)


def test_combined_loss_weights_clip_and_mse():
    gen = torch.Generator().manual_seed(2)
    target = torch.randn(5, 4, generator=gen)
    out = {"clip": torch.randn(5, 4, generator=gen), "mse": torch.randn(5, 4, generator=gen)}
    cfg = SimpleNamespace(clip_weight=0.75, clip_symmetric=False)
    got = combined_loss(out, target, torch.tensor(3.0), cfg)
    clip = clip_loss(out["clip"], target, 3.0)
    mse = ((out["mse"] - target) ** 2).mean()
    torch.testing.assert_close(got["clip"], clip)
    torch.testing.assert_close(got["mse"], mse)
    torch.testing.assert_close(got["loss"], 0.75 * clip + 0.25 * mse)
    sym = combined_loss(out, target, torch.tensor(3.0), SimpleNamespace(clip_weight=0.0, clip_symmetric=True))
    torch.testing.assert_close(sym["loss"], mse)
    assert float(sym["clip"]) != pytest.approx(float(clip), abs=1e-4)
