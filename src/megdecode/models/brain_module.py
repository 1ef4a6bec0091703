"""The brain module: MEG window (channels x time) -> two latent predictions (CLIP head, MSE head)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from megdecode.config import dataclass_from_section
from megdecode.models.aggregation import TemporalAggregation
from megdecode.models.conv_blocks import ConvEncoder
from megdecode.models.heads import ConvMLP, make_head
from megdecode.models.spatial_attention import SpatialAttention
from megdecode.models.subject_layers import SubjectLayers

OutputStage = Literal["conv_mlp", "linear"]
OUTPUT_STAGES: tuple[str, ...] = ("conv_mlp", "linear")


@dataclass(frozen=True)
class BrainModuleConfig:
    """Hyper-parameters of the brain module (defaults: megdecode/schemas/brain_module.schema.yaml only)."""

    spatial_channels: int
    fourier_freqs: int
    fourier_margin: float
    dropout_radius: float
    subject_layers: bool
    subject_layers_identity: bool
    hidden: int
    n_blocks: int
    kernel: int
    dilation_period: int
    glu_context: int
    batch_norm: bool
    out_channels: int
    output_stage: OutputStage
    aggregation: str
    token_rank: int

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BrainModuleConfig:
        """Build from the validated ``brain_module`` slice; unknown or missing keys are errors."""
        return dataclass_from_section(cls, values, "brain_module")


class BrainModule(nn.Module):
    """Spatial attention -> 1x1 conv -> subject layers -> conv blocks -> output stage -> heads.

    ``forward(x, subject, mask)`` takes x (batch, channels, time), subject indices (batch,) and an
    optional channel mask, and returns ``{"clip": (batch, D), "mse": (batch, D)}`` with D the flattened
    latent size. The output stage (``cfg.output_stage``):

    - ``conv_mlp`` (the paper's / brainmagick's): at every time step a 1x1 conv ``hidden -> 2 x hidden``,
      GELU, 1x1 conv ``-> out_channels`` (:class:`~megdecode.models.heads.ConvMLP`, ``self.final``),
      then the temporal aggregation of the ``out_channels`` features. Computed as
      ``aggregate.through_linear``: the last conv is linear and runs once on the aggregated
      ``2 x hidden`` features instead of at every time step (the same function, parameters and
      gradients; 0.47 GFLOP fewer per trial at the paper's width and 181 samples). The first conv
      and the GELU run at every time step: the GELU does not commute with the aggregation;
    - ``linear``: temporal aggregation of the ``hidden`` channels, then one Linear to ``out_channels``
      (``self.project``): the same maths as one 1x1 conv before the aggregation (both are linear; the
      biases reparametrised), cheaper, but not the conv MLP, whose GELU does not commute with the
      aggregation.
    """

    def __init__(
        self,
        cfg: BrainModuleConfig,
        positions: Tensor,
        n_subjects: int,
        n_times: int,
        latent_shape: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.latent_shape = tuple(int(d) for d in latent_shape)
        self.spatial = SpatialAttention(
            positions, cfg.spatial_channels, cfg.fourier_freqs, cfg.dropout_radius, cfg.fourier_margin
        )
        self.mix = nn.Conv1d(cfg.spatial_channels, cfg.spatial_channels, 1)
        self.subject = (
            SubjectLayers(cfg.spatial_channels, cfg.spatial_channels, n_subjects, cfg.subject_layers_identity)
            if cfg.subject_layers
            else None
        )
        self.encoder = ConvEncoder(
            cfg.spatial_channels,
            cfg.hidden,
            cfg.n_blocks,
            kernel=cfg.kernel,
            dilation_period=cfg.dilation_period,
            glu_context=cfg.glu_context,
            batch_norm=cfg.batch_norm,
        )
        if cfg.output_stage not in OUTPUT_STAGES:
            raise ValueError(f"unknown output_stage '{cfg.output_stage}' (use one of {list(OUTPUT_STAGES)})")
        conv_mlp = cfg.output_stage == "conv_mlp"
        self.final = ConvMLP(cfg.hidden, cfg.out_channels) if conv_mlp else None
        aggregated = cfg.out_channels if conv_mlp else cfg.hidden
        self.aggregate = TemporalAggregation(aggregated, n_times, cfg.aggregation)  # type: ignore[arg-type]
        self.project = None if conv_mlp else nn.Linear(cfg.hidden, cfg.out_channels)
        self.clip_head = make_head(cfg.out_channels, self.latent_shape, cfg.token_rank)
        self.mse_head = make_head(cfg.out_channels, self.latent_shape, cfg.token_rank)

    def features(
        self, x: Tensor, subject: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """(batch, channels, time) -> (batch, out_channels) shared by both heads."""
        h = self.mix(self.spatial(x, mask, generator))
        if self.subject is not None:
            h = self.subject(h, subject)
        h = self.encoder(h)
        if self.final is None:  # linear: aggregation, then Linear
            return self.project(self.aggregate(h))
        # conv_mlp: the second 1x1 conv is linear, computed after the aggregation (the same maths)
        g = F.gelu(self.final.conv1(h))
        return self.aggregate.through_linear(g, self.final.conv2.weight[:, :, 0], self.final.conv2.bias)

    def forward(
        self, x: Tensor, subject: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        z = self.features(x, subject, mask, generator)
        return {"clip": self.clip_head(z), "mse": self.mse_head(z)}
