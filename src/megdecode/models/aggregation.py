"""Temporal aggregation (time -> 1): learned affine map over time, global average, or attention pooling."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

AggregationMode = Literal["affine", "mean", "attention"]


class TemporalAggregation(nn.Module):
    """(batch, channels, time) -> (batch, channels).

    ``affine``: ``sum_t a_t x[:, :, t] + b`` with learned ``a`` (time,) and ``b`` (the paper's choice);
    ``mean``: global average pooling; ``attention``: softmax over time of a learned 1x1 score.
    All three are a per-sample weighting of time steps, so they commute with a linear 1x1 conv
    (biases aside), not with a nonlinearity: :meth:`through_linear` computes ``self(conv(x))`` for a
    1x1 conv without running the conv at every time step.
    """

    def __init__(self, channels: int, n_times: int, mode: AggregationMode = "affine") -> None:
        super().__init__()
        self.mode = mode
        if mode == "affine":
            self.time_weight = nn.Parameter(torch.full((n_times,), 1.0 / n_times))
            self.bias = nn.Parameter(torch.zeros(()))
        elif mode == "attention":
            self.score = nn.Conv1d(channels, 1, 1)
        elif mode != "mean":
            raise ValueError(f"unknown aggregation '{mode}' (use affine, mean or attention)")
        self.n_times = n_times

    def time_weights(self, x: Tensor) -> Tensor:
        """Weights over time, (time,) or (batch, time); they sum to 1 except for ``affine``."""
        if self.mode == "affine":
            return self.time_weight
        if self.mode == "mean":
            return x.new_full((x.shape[-1],), 1.0 / x.shape[-1])
        return torch.softmax(self.score(x).squeeze(1), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "affine" and x.shape[-1] != self.n_times:
            raise ValueError(f"affine aggregation expects {self.n_times} time samples, got {x.shape[-1]}")
        w = self.time_weights(x)
        out = torch.matmul(x, w) if w.ndim == 1 else torch.einsum("bct,bt->bc", x, w)
        return out + self.bias if self.mode == "affine" else out

    def through_linear(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """``self(conv(x))`` for the 1x1 conv ``conv(x)_t = weight @ x_t + bias``, the conv after the pooling.

        x (batch, in, time), weight (out, in), bias (out,); this aggregation has ``out`` channels. The
        same maths as the conv at every time step (the weighting over time is linear): ``affine`` gives
        ``weight @ sum_t a_t x_t + bias * sum_t a_t + b``, ``mean`` and ``attention`` (weights summing to
        1) ``weight @ sum_t w_t x_t + bias``, the attention score ``s . conv(x)_t`` read as
        ``(s @ weight) . x_t + s . bias``. ``out / in`` times fewer FLOPs than the conv.
        """
        if self.mode == "attention":
            score = self.score.weight[:, :, 0]  # (1, out)
            scores = F.conv1d(x, (score @ weight)[:, :, None], self.score.bias + score @ bias)
            w = torch.softmax(scores.squeeze(1), dim=-1)
        else:
            if self.mode == "affine" and x.shape[-1] != self.n_times:
                raise ValueError(f"affine aggregation expects {self.n_times} time samples, got {x.shape[-1]}")
            w = self.time_weights(x)
        pooled = torch.matmul(x, w) if w.ndim == 1 else torch.einsum("bct,bt->bc", x, w)
        if self.mode == "affine":
            return F.linear(pooled, weight, bias * w.sum()) + self.bias
        return F.linear(pooled, weight, bias)
