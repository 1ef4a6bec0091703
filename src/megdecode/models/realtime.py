"""A trained brain module frozen for one subject: the same outputs, fewer operations per trial.

Decoding online means one trial at a time (batch 1), where the training-time graph wastes work:
the spatial attention, the 1x1 conv and the subject layer are three linear maps in a row, batch norm
in evaluation is an affine map, and a kernel-3 convolution can use Winograd's algorithm. Here they
are folded, once, into a graph with the same maths:

- spatial attention x 1x1 conv x subject layer -> one (channels_out x sensors) matrix, itself folded
  into the first convolution when nothing else reads its output (the bias of the folded layer is
  then a (channels, time) map, exact at the zero-padded edges);
- batch norm (running statistics) -> the weights and bias of the convolution before it;
- kernel-3 convolutions -> :func:`~megdecode.models.winograd.winograd_conv1d` (2x fewer multiplies; CPU).
- the ``conv_mlp`` output stage (1x1 conv, GELU, 1x1 conv at every time step, then the temporal
  aggregation): its last 1x1 conv is linear, so it moves after the aggregation (a weighting of time
  steps; an attention score reads it through the folded ``score @ conv2`` matrix): one
  ``2 x hidden -> out_channels`` product per trial instead of one per time step.

Folding is done in float64. ``RealtimeDecoder(x)`` equals ``brain.eval()(x, subject, mask)`` to about
1e-5 relative (tests). It is a snapshot: training the brain module afterwards does not change it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from megdecode.models.brain_module import BrainModule
from megdecode.models.conv_blocks import ConvBlock
from megdecode.models.winograd import winograd_conv1d, winograd_weight


class FoldedConv1d(nn.Module):
    """A frozen "same"-padded Conv1d on time-major input (batch, time, in) -> (batch, time, out).

    Winograd for kernel 3 unless ``winograd=False``. ``edge_bias`` (kernel, out), optional: a per-tap
    bias that exists only where the tap reads inside the input (a constant folded in from a previous
    layer, whose zero padding it must respect).
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor,
        dilation: int,
        edge_bias: Tensor | None = None,
        winograd: bool = True,
    ) -> None:
        super().__init__()
        self.dilation = int(dilation)
        self.kernel = weight.shape[2]
        self.winograd = winograd and self.kernel == 3
        self.register_buffer("weight", winograd_weight(weight) if self.winograd else weight.contiguous())
        self.register_buffer("bias", bias.contiguous())
        self.register_buffer("edge_bias", edge_bias)
        self._bias_maps: dict[int, Tensor] = {}

    def bias_map(self, n_times: int) -> Tensor:
        """(out,) without ``edge_bias``; else the (time, out) bias including the zero-padded edges."""
        if self.edge_bias is None:
            return self.bias
        if n_times not in self._bias_maps:
            t = torch.arange(n_times, device=self.bias.device)[:, None]
            shift = (torch.arange(self.kernel, device=self.bias.device) - self.kernel // 2) * self.dilation
            inside = ((t + shift >= 0) & (t + shift < n_times)).to(self.bias.dtype)  # (time, kernel)
            self._bias_maps[n_times] = self.bias + inside @ self.edge_bias
        return self._bias_maps[n_times]

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 (torch's signature)
        self._bias_maps = {}  # .to(device/dtype): cached maps are rebuilt from the moved buffers
        return super()._apply(fn, recurse)

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias_map(x.shape[1])
        if self.winograd:
            return winograd_conv1d(x, self.weight, self.dilation).add_(bias)
        pad = self.dilation * (self.kernel // 2)
        y = F.conv1d(x.transpose(1, 2).contiguous(), self.weight, None, padding=pad, dilation=self.dilation)
        return y.transpose(1, 2).contiguous().add_(bias)


class FoldedBlock(nn.Module):
    """:class:`~megdecode.models.conv_blocks.ConvBlock` with batch norm folded in, time-major."""

    def __init__(
        self, conv1: FoldedConv1d, conv2: FoldedConv1d, glu: FoldedConv1d, residual_first: bool
    ) -> None:
        super().__init__()
        self.conv1, self.conv2, self.glu = conv1, conv2, glu
        self.residual_first = residual_first

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(self.conv1(x))
        x = x + h if self.residual_first else h
        x = x + F.gelu(self.conv2(x))
        return F.glu(self.glu(x), dim=-1)


def _copy(tensor: Tensor | None) -> Tensor | None:
    """A contiguous copy that shares no storage with the brain module (the decoder is a snapshot)."""
    return None if tensor is None else tensor.detach().clone(memory_format=torch.contiguous_format)


class FoldedPointwise(nn.Module):
    """A frozen 1x1 conv followed by GELU on time-major input: (batch, time, in) -> (batch, time, out).

    ``weight`` is (in, out): the layout the streaming decoder's stages use.
    """

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", _copy(weight))
        self.register_buffer("bias", _copy(bias))

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(torch.matmul(x, self.weight).add_(self.bias))


class FoldedReadout(nn.Module):
    """Temporal aggregation and the linear map after it, time-major: (batch, time, in) -> (batch, out).

    ``sum_t w_t u_t @ weight.T + bias`` with the weights ``w`` over time of the brain module's
    aggregation (``affine``: learned, ``mean``: 1 / time, ``attention``: softmax over time of
    ``u_t . score + score_bias``). Built by :meth:`from_brain`.
    """

    def __init__(
        self,
        mode: str,
        weight: Tensor,
        bias: Tensor,
        time_weight: Tensor | None = None,
        score: Tensor | None = None,
        score_bias: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.register_buffer("weight", _copy(weight.T))  # (in, out)
        self.register_buffer("bias", _copy(bias))
        self.register_buffer("time_weight", _copy(time_weight))
        self.register_buffer("score", _copy(score))
        self.register_buffer("score_bias", _copy(score_bias))

    @classmethod
    def from_brain(cls, brain: BrainModule) -> FoldedReadout:
        """Float64 fold of the brain module's aggregation and the linear map that follows it.

        ``linear`` stage: ``u`` = the conv blocks' output, the map = ``project``; an affine
        aggregation's bias ``b`` adds ``b * project.weight @ 1``. ``conv_mlp``: ``u`` = the GELU's
        output, the map = the second 1x1 conv (moved after the aggregation: both are linear); its bias
        ``b2`` becomes ``b2 * sum_t a_t + b`` (affine) or stays ``b2`` (the weights sum to 1), and an
        attention score ``s . z_t`` of its output reads ``u_t`` through ``conv2.weight.T @ s``.
        """
        agg = brain.aggregate
        if brain.final is None:
            weight = brain.project.weight.detach().double()
            bias = brain.project.bias.detach().double()
            after_weight = None
        else:
            weight = brain.final.conv2.weight.detach().double()[:, :, 0]
            bias = brain.final.conv2.bias.detach().double()
            after_weight = weight
        time_weight = score = score_bias = None
        if agg.mode == "affine":
            time_weight = agg.time_weight.detach().double()
            agg_bias = agg.bias.detach().double()
            if after_weight is None:
                bias = bias + agg_bias * weight.sum(dim=1)
            else:
                bias = bias * time_weight.sum() + agg_bias
        elif agg.mode == "attention":
            score = agg.score.weight.detach().double()[0, :, 0]
            score_bias = agg.score.bias.detach().double()
            if after_weight is not None:
                score, score_bias = after_weight.T @ score, score_bias + score @ bias
        return cls(agg.mode, weight, bias, time_weight, score, score_bias)

    def forward(self, u: Tensor) -> Tensor:
        if self.mode == "affine":
            pooled = torch.matmul(self.time_weight, u)
        elif self.mode == "mean":
            pooled = u.mean(dim=1)
        else:
            weights = torch.softmax(torch.matmul(u, self.score) + self.score_bias, dim=-1)  # (batch, time)
            pooled = torch.einsum("bt,btc->bc", weights, u)
        return torch.addmm(self.bias, pooled, self.weight)


def _conv_with_norm(conv: nn.Conv1d, norm: nn.Module) -> tuple[Tensor, Tensor]:
    """Float64 (weight, bias) of ``norm(conv(x))`` with batch norm's running statistics."""
    weight = conv.weight.detach().to(torch.float64)
    bias = conv.bias.detach().to(torch.float64)
    if isinstance(norm, nn.BatchNorm1d):
        scale = norm.weight.detach().double() / torch.sqrt(norm.running_var.double() + norm.eps)
        weight = weight * scale[:, None, None]
        bias = (bias - norm.running_mean.double()) * scale + norm.bias.detach().double()
    return weight, bias


class RealtimeDecoder(nn.Module):
    """``brain`` frozen for one subject and channel mask: (batch, sensors, time) -> {"clip", "mse"}.

    ``winograd``: None (default) uses Winograd convolutions when ``brain`` is on the CPU only (on a GPU,
    cuDNN's direct convolution is faster at batch 1: 0.77 vs 1.51 ms on an H200, 2 blocks).
    """

    def __init__(
        self,
        brain: BrainModule,
        subject: int = 0,
        mask: Tensor | None = None,
        winograd: bool | None = None,
    ) -> None:
        super().__init__()
        dtype = brain.mix.weight.dtype
        if winograd is None:
            winograd = brain.mix.weight.device.type == "cpu"
        with torch.no_grad():
            front, front_bias = self._front(brain, subject, mask)
            blocks: list[nn.Module] = []
            for index, block in enumerate(brain.encoder):
                blocks.append(self._fold_block(block, winograd, (front, front_bias) if index == 0 else None))
            if not blocks or blocks[0].residual_first:
                self.register_buffer("front", front.to(dtype))
                self.register_buffer("front_bias", front_bias.to(dtype))
            else:
                self.front = None  # folded into the first convolution
            conv1 = None if brain.final is None else brain.final.conv1  # conv_mlp: at every time step
            self.pointwise = (
                None
                if conv1 is None
                else FoldedPointwise(conv1.weight.detach()[:, :, 0].T, conv1.bias).to(dtype)
            )
            self.readout_map = FoldedReadout.from_brain(brain).to(dtype)
        self.blocks = nn.Sequential(*blocks).to(dtype)  # folded in float64, cast once
        self.clip_head = copy.deepcopy(brain.clip_head)
        self.mse_head = copy.deepcopy(brain.mse_head)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _front(brain: BrainModule, subject: int, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Spatial attention, 1x1 conv and subject layer as one float64 (matrix, bias)."""
        if mask is None:
            attention = brain.spatial.attention().double()
        else:
            valid = torch.as_tensor(mask, dtype=torch.bool, device=brain.mix.weight.device)
            attention = brain.spatial.attention(valid[None])[0].double()
        matrix = brain.mix.weight.detach().double()[:, :, 0] @ attention
        bias = brain.mix.bias.detach().double()
        if brain.subject is not None:
            if not 0 <= subject < brain.subject.n_subjects:
                raise IndexError(f"subject index {subject} out of range 0..{brain.subject.n_subjects - 1}")
            subject_weight = brain.subject.weight.detach().double()[subject]
            matrix, bias = subject_weight @ matrix, subject_weight @ bias
        return matrix, bias

    @staticmethod
    def _fold_block(block: ConvBlock, winograd: bool, front: tuple[Tensor, Tensor] | None) -> FoldedBlock:
        w1, b1 = _conv_with_norm(block.conv1, block.norm1)
        edge_bias = None
        if front is not None and not block.residual_first:
            matrix, bias = front
            edge_bias = torch.einsum("oik,i->ko", w1, bias)
            w1 = torch.einsum("oik,ic->ock", w1, matrix)
        w2, b2 = _conv_with_norm(block.conv2, block.norm2)
        wg, bg = _conv_with_norm(block.glu, nn.Identity())
        return FoldedBlock(
            FoldedConv1d(w1, b1, block.conv1.dilation[0], edge_bias, winograd),
            FoldedConv1d(w2, b2, block.conv2.dilation[0], winograd=winograd),
            FoldedConv1d(wg, bg, block.glu.dilation[0], winograd=winograd),
            block.residual_first,
        )

    def compiled(self) -> Callable[[Tensor], dict[str, Tensor]]:
        """This decoder through ``torch.compile`` with frozen weights: the same outputs, faster on the CPU.

        Inductor fuses the Winograd transforms and the element-wise layers into generated C++ loops
        (the matmuls stay in the BLAS): 15-25% faster at batch 1 on one core here. Needs a C++
        compiler; the first call compiles (~25 s at the paper's width, cached by torch afterwards).
        Call it under ``torch.no_grad()`` or ``torch.inference_mode()``.
        """
        return torch.compile(self, dynamic=False, options={"freezing": True})

    def forward(self, x: Tensor, heads: tuple[str, ...] = ("clip", "mse")) -> dict[str, Tensor]:
        h = x.transpose(1, 2)  # time-major from here on
        h = h if self.front is None else torch.matmul(h, self.front.T) + self.front_bias
        h = self.blocks(h)
        return self.readout(h if self.pointwise is None else self.pointwise(h), heads)

    def readout(self, features: Tensor, heads: tuple[str, ...] = ("clip", "mse")) -> dict[str, Tensor]:
        """Time-major features (batch, time, channels) -> aggregation, linear map, the ``heads``.

        ``features``: the conv blocks' output (``linear`` stage), or that through the first 1x1 conv
        and GELU of the ``conv_mlp`` stage (:attr:`pointwise`). ``heads``: which of ``clip`` and
        ``mse`` to compute (an online decoder that ranks images needs only ``clip``).
        """
        z = self.readout_map(features)
        modules = {"clip": self.clip_head, "mse": self.mse_head}
        return {head: modules[head](z) for head in heads}
