"""Decoding while a trial is being recorded: each layer advances as far as the samples so far allow.

A decoder that waits for the whole window pays for every layer at every time step after its last
sample arrives. Here samples are pushed as the acquisition delivers them; each convolution computes
the outputs whose receptive field is complete, so when the last sample arrives only the last few
outputs of each layer (its half receptive field, padding included) and the heads are left to compute.
The maths is that of :class:`~megdecode.models.realtime.RealtimeDecoder` with direct convolutions,
which equals ``brain.eval()`` (tests: any chunking gives the same outputs to float rounding). With the
``conv_mlp`` output stage, its first 1x1 conv and GELU are one more stage (kernel 1: each row as soon
as its input row is in); its second conv follows the aggregation, in the readout.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from megdecode.models.brain_module import BrainModule
from megdecode.models.realtime import FoldedBlock, RealtimeDecoder

PostOp = Callable[[Tensor, Tensor], Tensor]  # (conv output rows, the stage's input rows) -> output rows


@dataclass(frozen=True)
class _Stage:
    """A "same"-padded convolution on time-major rows, followed by an element-wise ``post`` op."""

    weight: Tensor  # (kernel * in, out): the kernel taps side by side
    bias: Tensor  # (out,) or (time, out)
    kernel: int
    dilation: int
    post: PostOp
    out_channels: int

    @property
    def half(self) -> int:
        """Samples the stage reads on each side of an output (its zero padding)."""
        return self.dilation * (self.kernel // 2)

    def rows(self, padded_input: Tensor, start: int, stop: int) -> Tensor:
        """Outputs ``start:stop`` from the stage's zero-padded (time + 2 * half, in) input."""
        d = self.dilation
        taps = [padded_input[start + j * d : stop + j * d] for j in range(self.kernel)]
        stacked = taps[0] if self.kernel == 1 else torch.cat(taps, dim=1)
        bias = self.bias if self.bias.ndim == 1 else self.bias[start:stop]
        y = torch.addmm(bias, stacked, self.weight)
        return self.post(y, padded_input[start + self.half : stop + self.half])


def _glu(y: Tensor, _: Tensor) -> Tensor:
    return F.glu(y, dim=-1)


def _residual_gelu(y: Tensor, x: Tensor) -> Tensor:
    return x + F.gelu(y)


def _gelu(y: Tensor, _: Tensor) -> Tensor:
    return F.gelu(y)


def _identity(y: Tensor, _: Tensor) -> Tensor:
    return y


class StreamingDecoder:
    """``brain`` frozen for one subject and channel mask, fed a trial's samples as they arrive.

    ``push(samples)`` takes (sensors, n) or (1, sensors, n) new samples of the current window and
    returns ``{"clip": (1, D), "mse": (1, D)}`` once the window's ``n_times`` samples are in, None
    before; the next push starts a new window. ``reset()`` drops a window half-way.
    """

    def __init__(self, brain: BrainModule, subject: int = 0, mask: Tensor | None = None) -> None:
        self.decoder = RealtimeDecoder(brain, subject, mask, winograd=False)
        self.n_times = brain.aggregate.n_times
        self.n_sensors = brain.spatial.n_channels
        self.stages = self._stages(self.decoder, self.n_times)
        widths = [self.n_sensors] + [stage.out_channels for stage in self.stages]
        self.pads = [stage.half for stage in self.stages] + [0]
        # buffer i: the input of stage i (the last: the readout's input), zero-padded for that stage
        new_zeros = self.decoder.readout_map.weight.new_zeros  # the decoder's dtype and device
        self.buffers = [
            new_zeros(self.n_times + 2 * pad, width) for pad, width in zip(self.pads, widths, strict=True)
        ]
        self.done = [0] * len(self.buffers)  # samples of each buffer computed so far

    @staticmethod
    def _stages(decoder: RealtimeDecoder, n_times: int) -> list[_Stage]:
        """The decoder's layers as a chain of stages: front (when not folded), 3 per block, then the
        ``conv_mlp`` stage's first 1x1 conv and GELU (when the brain module has that output stage)."""
        stages = []
        if decoder.front is not None:
            front = decoder.front
            stages.append(_Stage(front.T.contiguous(), decoder.front_bias, 1, 1, _identity, front.shape[0]))
        for block in decoder.blocks:
            assert isinstance(block, FoldedBlock)
            first = _residual_gelu if block.residual_first else _gelu
            for conv, post in ((block.conv1, first), (block.conv2, _residual_gelu), (block.glu, _glu)):
                out_channels = conv.weight.shape[0]
                weight = conv.weight.permute(2, 1, 0).reshape(-1, out_channels).contiguous()
                width = out_channels // 2 if post is _glu else out_channels
                stages.append(_Stage(weight, conv.bias_map(n_times), conv.kernel, conv.dilation, post, width))
        pointwise = decoder.pointwise
        if pointwise is not None:
            stages.append(_Stage(pointwise.weight, pointwise.bias, 1, 1, _gelu, pointwise.weight.shape[1]))
        return stages

    def fork(self) -> StreamingDecoder:
        """A decoder for another window in flight: the same frozen weights (shared), its own buffers."""
        twin = copy.copy(self)
        twin.buffers = [torch.zeros_like(buffer) for buffer in self.buffers]
        twin.done = [0] * len(self.buffers)
        return twin

    def reset(self) -> None:
        """Start a new window (the buffers' zero padding is never written, so no clearing is needed)."""
        self.done = [0] * len(self.buffers)

    @torch.inference_mode()  # also lets a decoder built under inference mode write its buffers
    def push(self, samples: Tensor) -> dict[str, Tensor] | None:
        """Add the window's next samples and compute what they make computable; the outputs at its end."""
        if samples.ndim == 3 and samples.shape[0] == 1:
            samples = samples[0]
        if samples.ndim != 2 or samples.shape[0] != self.n_sensors:
            raise ValueError(
                f"push expects (sensors, samples) or (1, sensors, samples) with {self.n_sensors} sensors, "
                f"got {tuple(samples.shape)}"
            )
        left = self.n_times - self.done[0]
        if samples.shape[1] > left:
            raise ValueError(
                f"{samples.shape[1]} samples pushed but the {self.n_times}-sample window has {left} left; "
                "split the chunk at the window's end"
            )
        start, pad = self.done[0], self.pads[0]
        self.buffers[0][pad + start : pad + start + samples.shape[1]] = samples.T
        self.done[0] += samples.shape[1]
        for i, stage in enumerate(self.stages):
            ready = self.n_times if self.done[i] == self.n_times else self.done[i] - stage.half
            start, stop = self.done[i + 1], ready
            if stop > start:
                pad = self.pads[i + 1]
                self.buffers[i + 1][pad + start : pad + stop] = stage.rows(self.buffers[i], start, stop)
                self.done[i + 1] = stop
        if self.done[-1] < self.n_times:
            return None
        self.reset()
        return self.decoder.readout(self.buffers[-1][None])
