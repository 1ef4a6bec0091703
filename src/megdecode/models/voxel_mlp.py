"""The fMRI decoder's network: voxels -> hidden layer -> the brain module's two heads (CLIP and MSE)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from megdecode.config import dataclass_from_section
from megdecode.models.heads import make_head


@dataclass(frozen=True)
class VoxelMLPConfig:
    """The ``fmri.mlp`` config section."""

    hidden: int
    dropout: float

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> VoxelMLPConfig:
        return dataclass_from_section(cls, values, "fmri.mlp")


class VoxelMLP(nn.Module):
    """(batch, voxels) -> ``{"clip": (batch, D), "mse": (batch, D)}``, D the flattened latent size.

    Dropout on the voxels, Linear -> LayerNorm -> GELU -> dropout, then one :func:`make_head` per loss as in
    :class:`~megdecode.models.BrainModule`. ``forward`` takes (and ignores) the brain module's subject index,
    channel mask and generator, so the brain module's training loop (:mod:`megdecode.training.loop`) runs it.
    """

    def __init__(self, cfg: VoxelMLPConfig, n_voxels: int, latent_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.latent_shape = tuple(int(d) for d in latent_shape)
        self.body = nn.Sequential(
            nn.Dropout(cfg.dropout),
            nn.Linear(n_voxels, cfg.hidden),
            nn.LayerNorm(cfg.hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
        )
        self.heads = nn.ModuleDict({k: make_head(cfg.hidden, self.latent_shape) for k in ("clip", "mse")})

    def forward(
        self, x: Tensor, subject: Tensor | None = None, mask: Any = None, generator: Any = None
    ) -> dict[str, Tensor]:
        h = self.body(x)
        return {k: head(h) for k, head in self.heads.items()}
