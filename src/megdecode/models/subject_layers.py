"""Subject layers: one learned 1x1 channel-mixing matrix per subject, chosen by subject index."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SubjectLayers(nn.Module):
    """(batch, channels, time) -> (batch, channels_out, time) with the matrix of each sample's subject.

    Samples are grouped by subject, so a batch from one subject costs one matmul; a sample's output
    depends only on its own subject's matrix (and gradients reach only that matrix).
    """

    def __init__(
        self, channels: int, channels_out: int, n_subjects: int, init_identity: bool = False
    ) -> None:
        super().__init__()
        if init_identity:
            if channels != channels_out:
                raise ValueError("identity initialisation needs channels == channels_out")
            weight = torch.eye(channels).expand(n_subjects, channels, channels).clone()
        else:
            weight = torch.randn(n_subjects, channels_out, channels) / math.sqrt(channels)
        self.weight = nn.Parameter(weight)

    @property
    def n_subjects(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: Tensor, subject: Tensor) -> Tensor:
        subject = subject.to(device=x.device, dtype=torch.long)
        if subject.ndim != 1 or len(subject) != len(x):
            raise ValueError(
                f"subject must be (batch,) indices, got {tuple(subject.shape)} for batch {len(x)}"
            )
        if len(subject) and (int(subject.min()) < 0 or int(subject.max()) >= self.n_subjects):
            raise IndexError(f"subject index out of range 0..{self.n_subjects - 1}")
        groups = torch.unique(subject)
        if len(groups) == 1:
            return torch.matmul(self.weight[groups[0]], x)
        out = x.new_empty(x.shape[0], self.weight.shape[1], x.shape[2])
        for s in groups:
            idx = (subject == s).nonzero(as_tuple=True)[0]
            out[idx] = torch.matmul(self.weight[s], x[idx])
        return out
