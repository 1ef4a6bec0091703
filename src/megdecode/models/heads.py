"""Output stage and projection heads: per-time-step conv MLP (the paper's), then LayerNorm, GELU, Linear
heads from the brain features to a latent, flat or tokens."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ConvMLP(nn.Module):
    """(batch, in, time) -> (batch, out, time): 1x1 conv in -> 2 x in, GELU, 1x1 conv -> out per time step.

    brainmagick's ``SimpleConv(complex_out=True)`` final layer (``clip_conv.yaml``), the paper's output
    stage before the temporal aggregation.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, 2 * in_channels, 1)
        self.conv2 = nn.Conv1d(2 * in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class MLPHead(nn.Module):
    """(batch, features) -> (batch, dim): LayerNorm, GELU, Linear."""

    def __init__(self, features: int, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features)
        self.linear = nn.Linear(features, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(F.gelu(self.norm(x)))


class TokenHead(nn.Module):
    """(batch, features) -> (batch, tokens * dim) for a latent of several tokens (e.g. 257 x 768).

    LayerNorm, GELU, then a per-token linear map of rank ``rank`` followed by a linear map shared by
    all tokens (``features -> tokens x rank -> tokens x dim``) plus a per-token bias: a factorised
    Linear that keeps a 257 x 768 head at ~34 M instead of 400 M parameters. ``rank=0`` is a full Linear.
    """

    def __init__(self, features: int, tokens: int, dim: int, rank: int = 64) -> None:
        super().__init__()
        self.tokens, self.dim, self.rank = tokens, dim, rank
        self.norm = nn.LayerNorm(features)
        if rank <= 0:
            self.full = nn.Linear(features, tokens * dim)
        else:
            self.per_token = nn.Linear(features, tokens * rank, bias=False)
            self.shared = nn.Linear(rank, dim, bias=False)
            self.token_bias = nn.Parameter(torch.zeros(tokens, dim))
            nn.init.normal_(self.per_token.weight, std=1.0 / math.sqrt(features))

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(self.norm(x))
        if self.rank <= 0:
            return self.full(h)
        z = self.per_token(h).view(len(x), self.tokens, self.rank)
        return (self.shared(z) + self.token_bias).flatten(1)


def make_head(features: int, latent_shape: tuple[int, ...], token_rank: int = 64) -> nn.Module:
    """An :class:`MLPHead` for a (dim,) latent, a :class:`TokenHead` for (tokens, dim)."""
    if len(latent_shape) == 1:
        return MLPHead(features, latent_shape[0])
    if len(latent_shape) == 2:
        return TokenHead(features, latent_shape[0], latent_shape[1], token_rank)
    raise ValueError(f"latent shape must be (dim,) or (tokens, dim), got {latent_shape}")
