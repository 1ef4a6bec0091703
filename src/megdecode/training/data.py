"""Training data of the brain module: the trials of one split on the model's channel set, with targets."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from megdecode.artifacts.latents import Latents
from megdecode.artifacts.predictions import TargetScaler
from megdecode.artifacts.preprocessed import SubjectData
from megdecode.artifacts.windows import Window, epoch_times, window_samples

log = logging.getLogger(__name__)


class TrialSet:
    """Trials of one split across subjects, on the model's channel set, with standardised targets.

    ``channel_map[s]`` gives, for subject ``s``, the model channel of each of its channels; model
    channels a subject lacks are zero-filled and masked out.
    """

    def __init__(
        self,
        subjects: Sequence[SubjectData],
        split: str,
        channel_names: Sequence[str],
        latents: Latents,
        scaler: TargetScaler,
    ) -> None:
        self.subjects = list(subjects)
        self.split = split
        self.n_channels = len(channel_names)
        position = {name: i for i, name in enumerate(channel_names)}
        self.channel_map = [np.array([position[c] for c in s.channels]) for s in self.subjects]
        self.masks = np.zeros((len(self.subjects), self.n_channels), bool)
        for s, cmap in enumerate(self.channel_map):
            self.masks[s, cmap] = True
        self.full = bool(self.masks.all())
        subj, rows = [], []
        for s, data in enumerate(self.subjects):
            r = np.flatnonzero(data.trials["split"].to_numpy(str) == split)
            subj.append(np.full(len(r), s))
            rows.append(r)
        self.subject_index = np.concatenate(subj) if subj else np.zeros(0, int)
        self.rows = np.concatenate(rows) if rows else np.zeros(0, int)
        self.image_ids = np.concatenate(
            [d.trials["image_id"].to_numpy(str)[r] for d, r in zip(self.subjects, rows, strict=True)]
        )
        self.targets = (
            scaler.transform(latents.values[latents.rows(self.image_ids)]) if len(self.rows) else None
        )

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, idx: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """(x, subject, mask or None, target) for positions ``idx`` of this set."""
        idx = np.asarray(idx)
        subj = self.subject_index[idx]
        n_times = self.subjects[0].meg.shape[2]
        x = np.zeros((len(idx), self.n_channels, n_times), np.float32)
        for s in np.unique(subj):
            sel = np.flatnonzero(subj == s)
            rows = self.rows[idx[sel]]
            order = np.argsort(rows)
            block = np.asarray(self.subjects[s].meg[rows[order]], np.float32)
            out = np.empty_like(block)
            out[order] = block
            if self.full and np.array_equal(self.channel_map[s], np.arange(self.n_channels)):
                x[sel] = out
            else:
                x[np.ix_(sel, self.channel_map[s])] = out
        mask = None if self.full else torch.from_numpy(self.masks[subj]).to(device)
        return (
            torch.from_numpy(x).to(device),
            torch.from_numpy(subj.astype(np.int64)).to(device),
            mask,
            torch.from_numpy(self.targets[idx]).to(device),
        )


def union_channels(subjects: Sequence[SubjectData]) -> tuple[list[str], np.ndarray]:
    """Model channel set (first subject's order, then channels only later subjects have) and positions."""
    names: list[str] = []
    pos: dict[str, np.ndarray] = {}
    for s in subjects:
        for name, p in zip(s.channels, s.positions, strict=True):
            if name not in pos:
                names.append(name)
                pos[name] = p
            elif not np.allclose(pos[name], p, atol=1e-3):
                log.warning(
                    "channel %s has different layout positions across subjects; using the first", name
                )
    return names, np.stack([pos[n] for n in names]).astype(np.float32)


def crop_subject(subject: SubjectData, crop: tuple[float, float]) -> SubjectData:
    """The subject with ``meg`` cut to the samples of ``[tmin, tmax)`` (a view: memory-mapping kept)."""
    tmin, tmax = (float(t) for t in crop)
    if not tmax > tmin:
        raise ValueError(f"crop window needs tmin < tmax, got [{tmin}, {tmax}]")
    idx = window_samples(epoch_times(subject.info, subject.meg.shape[2]), Window("crop", tmin, tmax))
    meg = subject.meg[:, :, int(idx[0]) : int(idx[-1]) + 1]
    log.info("sub-%s: epochs cropped to [%g, %g) s, %d samples", subject.name, tmin, tmax, meg.shape[2])
    return dataclasses.replace(subject, meg=meg)
