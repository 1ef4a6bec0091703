"""Brain module building blocks (torch)."""

from megdecode.models.aggregation import TemporalAggregation
from megdecode.models.brain_module import BrainModule, BrainModuleConfig
from megdecode.models.conv_blocks import ConvBlock, ConvEncoder
from megdecode.models.heads import ConvMLP, MLPHead, TokenHead, make_head
from megdecode.models.realtime import RealtimeDecoder
from megdecode.models.spatial_attention import SpatialAttention, disc_mask, fourier_embedding
from megdecode.models.streaming import StreamingDecoder
from megdecode.models.subject_layers import SubjectLayers

__all__ = [
    "BrainModule",
    "BrainModuleConfig",
    "ConvBlock",
    "ConvEncoder",
    "ConvMLP",
    "MLPHead",
    "RealtimeDecoder",
    "SpatialAttention",
    "StreamingDecoder",
    "SubjectLayers",
    "TemporalAggregation",
    "TokenHead",
    "disc_mask",
    "fourier_embedding",
    "make_head",
]
