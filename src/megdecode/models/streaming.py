"""Decoding while a trial is being recorded: each layer advances as far as the samples so far allow.

A decoder that waits for the whole window pays for every layer at every time step after its last
sample arrives. Here samples are pushed as the acquisition delivers them; each convolution computes
the outputs whose receptive field is complete, so when the last sample arrives only the last few
outputs of each layer (its half receptive field, padding included) and the heads are left to compute.
Within a layer, each kernel tap is its own matrix product, added to an output row's pre-activation as
soon as the input row it reads is in: the last push adds only the taps that read the newest rows of
each layer's input (taps that read the zero padding are skipped): 12% fewer multiply-adds after
the last sample than one product over the stacked taps (paper's width, 5 blocks, 6 samples left).
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

from megdecode.models.brain_module import BrainModule
from megdecode.models.realtime import FoldedBlock, RealtimeDecoder

# (conv output rows, the stage's input rows, output rows): writes the output rows (no allocation)
PostOp = Callable[[Tensor, Tensor, Tensor], None]


@dataclass(frozen=True)
class _Stage:
    """A "same"-padded convolution on time-major rows, followed by an element-wise ``post`` op.

    Each tap is its own (in, out) matrix, applied to a row as soon as the input row it reads is in:
    a row's pre-activation is the sum of its taps (the bias with the first one), so when a window's
    last sample arrives the taps that read earlier rows are already summed. Taps that read the zero
    padding are skipped.
    """

    taps: Tensor  # (kernel, in, out)
    bias: Tensor  # (out,) or (time, out)
    kernel: int
    dilation: int
    post: PostOp
    out_channels: int  # after ``post`` (GLU halves the conv's width)

    @property
    def half(self) -> int:
        """Samples the stage reads on each side of an output (its zero padding)."""
        return self.dilation * (self.kernel // 2)

    def offsets(self) -> list[int]:
        """Input row read by tap ``j`` of output row ``t``: ``t + offsets()[j]``."""
        return [(j - self.kernel // 2) * self.dilation for j in range(self.kernel)]


@dataclass(frozen=True)
class _TapPlan:
    """Row bounds of one tap in a window of ``n`` rows (all clamped to 0..n)."""

    offset: int
    lo: int  # first row whose input lies inside the window (rows before read the left padding)
    hi: int  # rows from here read the right padding
    first_until: int  # rows lo..first_until have no real tap before this one: written, not added


def _tap_plans(stage: _Stage, n: int) -> list[_TapPlan]:
    offsets = stage.offsets()
    plans = []
    for j, off in enumerate(offsets):
        lo, hi = min(n, max(0, -off)), max(0, min(n, n - off))
        first_until = n if j == 0 else min(n, max(lo, -offsets[j - 1]))
        plans.append(_TapPlan(off, lo, hi, first_until))
    return plans


def _glu(y: Tensor, _: Tensor, out: Tensor) -> None:
    torch._C._nn.glu(y, -1, out=out)  # F.glu, written in place


def _residual_gelu(y: Tensor, x: Tensor, out: Tensor) -> None:
    torch._C._nn.gelu(y, out=out)  # F.gelu, written in place
    out.add_(x)


def _gelu(y: Tensor, _: Tensor, out: Tensor) -> None:
    torch._C._nn.gelu(y, out=out)


def _identity(y: Tensor, _: Tensor, out: Tensor) -> None:
    out.copy_(y)


class StreamingDecoder:
    """``brain`` frozen for one subject and channel mask, fed a trial's samples as they arrive.

    ``push(samples)`` takes (sensors, n) or (1, sensors, n) new samples of the current window and
    returns the ``heads`` (default ``{"clip": (1, D), "mse": (1, D)}``) once the window's ``n_times``
    samples are in, None before; the next push starts a new window. ``reset()`` drops a window
    half-way. An online decoder that only ranks images asks for ``heads=("clip",)``: the MSE head's
    weights are then never read.
    """

    def __init__(
        self,
        brain: BrainModule,
        subject: int = 0,
        mask: Tensor | None = None,
        heads: tuple[str, ...] = ("clip", "mse"),
    ) -> None:
        unknown = [h for h in heads if h not in ("clip", "mse")]
        if unknown or not heads:
            raise ValueError(f"heads must be a non-empty subset of ('clip', 'mse'), got {heads}")
        self.heads = tuple(heads)
        self.decoder = RealtimeDecoder(brain, subject, mask, winograd=False)
        self.n_times = brain.aggregate.n_times
        self.n_sensors = brain.spatial.n_channels
        self.stages = self._stages(self.decoder, self.n_times)
        self.plans = [_tap_plans(stage, self.n_times) for stage in self.stages]
        widths = [self.n_sensors] + [stage.out_channels for stage in self.stages]
        # buffer i: the input of stage i (the last: the readout's input); accumulator i: stage i's
        # pre-activation (its taps summed so far)
        new_zeros = self.decoder.readout_map.weight.new_zeros  # the decoder's dtype and device
        self.buffers = [new_zeros(self.n_times, width) for width in widths]
        self.accumulators = [new_zeros(self.n_times, stage.taps.shape[2]) for stage in self.stages]
        self.reset()

    @staticmethod
    def _stages(decoder: RealtimeDecoder, n_times: int) -> list[_Stage]:
        """The decoder's layers as a chain of stages: front (when not folded), 3 per block, then the
        ``conv_mlp`` stage's first 1x1 conv and GELU (when the brain module has that output stage)."""
        stages = []
        if decoder.front is not None:
            front = decoder.front  # (out, sensors)
            taps = front.T.contiguous()[None]
            stages.append(_Stage(taps, decoder.front_bias, 1, 1, _identity, front.shape[0]))
        for block in decoder.blocks:
            assert isinstance(block, FoldedBlock)
            first = _residual_gelu if block.residual_first else _gelu
            for conv, post in ((block.conv1, first), (block.conv2, _residual_gelu), (block.glu, _glu)):
                out_channels = conv.weight.shape[0]
                taps = conv.weight.permute(2, 1, 0).contiguous()  # (kernel, in, out)
                width = out_channels // 2 if post is _glu else out_channels
                stages.append(_Stage(taps, conv.bias_map(n_times), conv.kernel, conv.dilation, post, width))
        pointwise = decoder.pointwise
        if pointwise is not None:
            taps = pointwise.weight.contiguous()[None]  # (1, in, out)
            stages.append(_Stage(taps, pointwise.bias, 1, 1, _gelu, pointwise.weight.shape[1]))
        return stages

    def fork(self) -> StreamingDecoder:
        """A decoder for another window in flight: the same frozen weights (shared), its own buffers."""
        twin = copy.copy(self)
        twin.buffers = [torch.zeros_like(buffer) for buffer in self.buffers]
        twin.accumulators = [torch.zeros_like(acc) for acc in self.accumulators]
        twin.reset()
        return twin

    def reset(self) -> None:
        """Start a new window (no clearing: every row is written before it is read)."""
        self.done = [0] * len(self.buffers)  # rows of each buffer computed so far
        self.tap_done = [[plan.lo for plan in plans] for plans in self.plans]  # rows each tap was added to

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
        n = self.n_times
        left = n - self.done[0]
        if samples.shape[1] > left:
            raise ValueError(
                f"{samples.shape[1]} samples pushed but the {n}-sample window has {left} left; "
                "split the chunk at the window's end"
            )
        start = self.done[0]
        self.buffers[0][start : start + samples.shape[1]] = samples.T
        self.done[0] += samples.shape[1]
        for i, stage in enumerate(self.stages):
            x, acc, tap_done = self.buffers[i], self.accumulators[i], self.tap_done[i]
            available = self.done[i]
            complete = n
            for j, plan in enumerate(self.plans[i]):
                a, b = tap_done[j], min(plan.hi, available - plan.offset)
                if b > a:
                    self._add_tap(stage, j, plan, x, acc, a, b)
                    tap_done[j] = b
                if tap_done[j] < plan.hi:
                    complete = min(complete, tap_done[j])
            start = self.done[i + 1]
            if complete > start:
                stage.post(acc[start:complete], x[start:complete], self.buffers[i + 1][start:complete])
                self.done[i + 1] = complete
        if self.done[-1] < n:
            return None
        self.reset()
        return self.decoder.readout(self.buffers[-1][None], self.heads)

    @staticmethod
    def _add_tap(stage: _Stage, j: int, plan: _TapPlan, x: Tensor, acc: Tensor, a: int, b: int) -> None:
        """Tap ``j`` of output rows ``a:b``: written with the bias where no earlier tap is real, else added
        to the accumulator."""
        weight, off = stage.taps[j], plan.offset
        split = min(b, max(a, plan.first_until))
        if split > a:
            bias = stage.bias if stage.bias.ndim == 1 else stage.bias[a:split]
            torch.addmm(bias, x[a + off : split + off], weight, out=acc[a:split])
        if b > split:
            acc[split:b].addmm_(x[split + off : b + off], weight)
