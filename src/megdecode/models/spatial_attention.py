"""Spatial attention over sensor positions (Défossez et al. 2023; Benchetrit et al. 2023).

Each output channel is a softmax-weighted sum of the input sensors. The weights are a learned
linear function of a fixed Fourier embedding of each sensor's 2-D layout position. Because the
positions are fixed per recording, the embedding is computed once (a buffer) and the attention
matrix once per forward pass, not once per sample: the layer is then a single matmul.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def fourier_embedding(positions: Tensor, n_freqs: int, margin: float = 0.2) -> Tensor:
    """Fourier features of 2-D positions in [0, 1]: (channels, 2) -> (channels, 2 * n_freqs**2).

    Frequencies ``kx, ky`` in ``0..n_freqs-1`` over a period of ``1 + 2 * margin`` (so that the
    embedding is not periodic inside the layout); features are ``cos`` then ``sin`` of the phases.
    """
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions must be (channels, 2), got {tuple(positions.shape)}")
    width = 1.0 + 2.0 * margin
    pos = positions.to(torch.float64) + margin
    freqs = torch.arange(n_freqs, dtype=torch.float64)
    # phase[c, i, j] = 2 pi (f_i x_c + f_j y_c) / width
    phase = (2 * math.pi / width) * (
        freqs[None, :, None] * pos[:, 0, None, None] + freqs[None, None, :] * pos[:, 1, None, None]
    )
    phase = phase.reshape(len(positions), -1)
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=1).to(torch.float32)


def disc_mask(positions: Tensor, radius: float, generator: torch.Generator | None = None) -> Tensor:
    """Boolean (channels,) mask, True for sensors *outside* a disc of ``radius`` at a random centre."""
    centre = torch.rand(2, generator=generator, device="cpu").to(positions.device)
    return (positions - centre).norm(dim=1) > radius


class SpatialAttention(nn.Module):
    """Sensor-position attention: (batch, channels, time) -> (batch, n_out, time).

    ``positions`` (channels, 2) are the layout positions of the model's channel set. A channel mask
    (True = present) removes sensors a recording lacks; in training, a random disc of sensors
    (``dropout_radius`` in layout units) is removed once per batch.
    """

    def __init__(
        self,
        positions: Tensor,
        n_out: int,
        n_freqs: int = 32,
        dropout_radius: float = 0.2,
        margin: float = 0.2,
    ) -> None:
        super().__init__()
        positions = torch.as_tensor(positions, dtype=torch.float32)
        self.register_buffer("positions", positions)
        self.register_buffer("embedding", fourier_embedding(positions, n_freqs, margin))
        dim = self.embedding.shape[1]
        self.heads = nn.Parameter(torch.randn(n_out, dim) / math.sqrt(dim))
        self.dropout_radius = dropout_radius
        self._cache: tuple[tuple[int, ...], Tensor] | None = None

    @property
    def n_channels(self) -> int:
        return self.positions.shape[0]

    def attention(self, valid: Tensor | None = None) -> Tensor:
        """Softmax weights (n_out, channels); (masks, n_out, channels) for a (masks, channels) ``valid``."""
        scores = self.heads @ self.embedding.T
        if valid is None:
            return torch.softmax(scores, dim=-1)
        scores = scores.expand(*valid.shape[:-1], *scores.shape)
        scores = scores.masked_fill(~valid.unsqueeze(-2), float("-inf"))
        return torch.softmax(scores, dim=-1)

    def _cached_attention(self) -> Tensor:
        """Attention weights without a mask; reused across calls in inference (no grad, weights unchanged)."""
        if self.training or torch.is_grad_enabled() or self.heads.is_inference():
            # inference tensors (a module built under torch.inference_mode) have no version counter
            self._cache = None
            return self.attention()
        key = (self.heads._version, self.heads.data_ptr(), self.embedding.data_ptr())
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.attention())
        return self._cache[1]

    def forward(
        self, x: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """``mask``: None, (channels,) or (batch, channels) booleans, True where the sensor exists."""
        if x.shape[1] != self.n_channels:
            raise ValueError(f"expected {self.n_channels} channels, got {x.shape[1]}")
        valid = mask
        if self.training and self.dropout_radius > 0:
            keep = disc_mask(self.positions, self.dropout_radius, generator)
            valid = keep if valid is None else valid & keep
            # never drop every sensor of a recording: fall back to the unbanned mask
            if valid.ndim == 1 and not bool(valid.any()):
                valid = mask
            elif valid.ndim == 2:
                empty = ~valid.any(dim=1)
                if bool(empty.any()):
                    valid = torch.where(empty[:, None], mask, valid)
        if valid is None:
            return torch.matmul(self._cached_attention(), x)
        if valid.ndim == 1:
            return torch.matmul(self.attention(valid[None])[0], x)
        uniq, inverse = torch.unique(valid, dim=0, return_inverse=True)
        weights = self.attention(uniq)
        if len(uniq) == 1:
            return torch.matmul(weights[0], x)
        return torch.einsum("boc,bct->bot", weights[inverse], x)
