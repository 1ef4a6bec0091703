"""Residual dilated convolution blocks with a GLU output (Défossez et al. 2023)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class ConvBlock(nn.Module):
    """Block ``index``: two residual dilated convs (batch norm, GELU), then a conv + GLU.

    Dilations are ``2 ** (2 * index % period)`` and ``2 ** ((2 * index + 1) % period)``; the first conv
    is residual only when ``in_channels == channels``. Time length is preserved.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        index: int,
        kernel: int = 3,
        dilation_period: int = 5,
        glu_context: int = 1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd to keep the time length, got {kernel}")
        d1 = 2 ** ((2 * index) % dilation_period)
        d2 = 2 ** ((2 * index + 1) % dilation_period)
        self.conv1 = nn.Conv1d(in_channels, channels, kernel, dilation=d1, padding=d1 * (kernel - 1) // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel, dilation=d2, padding=d2 * (kernel - 1) // 2)
        self.norm1 = nn.BatchNorm1d(channels) if batch_norm else nn.Identity()
        self.norm2 = nn.BatchNorm1d(channels) if batch_norm else nn.Identity()
        self.glu = nn.Conv1d(channels, 2 * channels, 2 * glu_context + 1, padding=glu_context)
        self.residual_first = in_channels == channels

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(self.norm1(self.conv1(x)))
        x = x + h if self.residual_first else h
        x = x + F.gelu(self.norm2(self.conv2(x)))
        return F.glu(self.glu(x), dim=1)


class ConvEncoder(nn.Sequential):
    """A stack of ``n_blocks`` :class:`ConvBlock` (in_channels -> channels)."""

    def __init__(self, in_channels: int, channels: int, n_blocks: int, **block_kwargs: object) -> None:
        blocks = [
            ConvBlock(in_channels if k == 0 else channels, channels, k, **block_kwargs)  # type: ignore[arg-type]
            for k in range(n_blocks)
        ]
        super().__init__(*blocks)
