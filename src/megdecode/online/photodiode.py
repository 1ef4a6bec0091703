"""Photodiode-corrected onsets from a live stream: the first light edge after each trigger.

The offline conversion (:func:`megdecode.bids.photodiode_onsets`) moves each trigger to the first
photodiode edge at or after it, within ``max_lag_s``, with the edge level ``low + threshold * (high -
low)`` between the run's dark and lit levels (its 5th and 95th percentiles). A live decoder cannot
read the whole run first, so here the two levels come from each trigger's own neighbourhood: the dark
(resting) level is the median of the ``pre_s`` before the trigger, the lit level the sample farthest
from it in the search window ``trigger .. trigger + max_lag``; the polarity is the side of that
sample. The edge is the first sample of the search window that crosses the level from the dark side.
For a step that rises within one sample (the simulator's, and a photodiode on a screen with a fast
response) any level between the two light levels gives the same sample, so online and offline onsets
are equal; on a slow ramp they can differ by a sample or two. A trigger whose window shows no light
step (contrast under ``min_contrast`` times the pre-trigger noise, or non-finite samples) gets no onset
and is reported with the reason, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Resolved:
    """A trigger's search result: ``onset`` is the edge sample, or None with ``detail`` saying why."""

    trigger: int
    payload: Any
    onset: int | None
    detail: str = ""


class PhotodiodeOnsets:
    """Stream-fed photodiode edge search (see the module docstring).

    ``add(samples, start)`` appends the photodiode channel's raw samples (stream counter ``start``),
    ``expect(trigger, payload)`` queues a trigger, ``resolve(end)`` returns the queued triggers whose
    search window ends before sample ``end`` (all fed), in trigger order. Only the samples that a
    queued or later trigger can read are kept.
    """

    def __init__(
        self,
        sfreq: float,
        max_lag_s: float,
        threshold: float,
        pre_s: float = 0.02,
        min_contrast: float = 10.0,
    ) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"photodiode threshold must be in (0, 1), got {threshold}")
        if not max_lag_s > 0:
            raise ValueError(f"photodiode max lag must be > 0 s, got {max_lag_s}")
        self.max_lag = int(round(max_lag_s * sfreq))
        self.max_lag_s = float(max_lag_s)
        self.pre = max(2, int(round(pre_s * sfreq)))
        self.threshold = float(threshold)
        self.min_contrast = float(min_contrast)
        self.buffer = np.empty(0)
        self.first = 0  # stream counter of buffer[0]
        self.waiting: list[tuple[int, Any]] = []

    def add(self, samples: np.ndarray, start: int) -> None:
        """Append the channel's samples ``start .. start + len(samples)`` (contiguous with the last)."""
        if start != self.first + len(self.buffer):
            raise ValueError(
                f"photodiode samples from {start}, expected {self.first + len(self.buffer)} (contiguous)"
            )
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, dtype=np.float64)])

    def expect(self, trigger: int, payload: Any) -> None:
        """Queue a trigger (at or after the last :meth:`resolve`'s ``end - pre - 1``)."""
        self.waiting.append((int(trigger), payload))

    def resolve(self, end: int) -> list[Resolved]:
        """The triggers whose search window (``trigger .. trigger + max_lag``) lies before ``end``; then
        drops the samples no queued or later trigger can read."""
        ready = [(t, p) for t, p in self.waiting if t + self.max_lag < end]
        self.waiting = [(t, p) for t, p in self.waiting if t + self.max_lag >= end]
        out = [self._search(t, p) for t, p in ready]
        keep_from = min([t - self.pre - 1 for t, _ in self.waiting] + [end - self.pre - 1])
        cut = keep_from - self.first
        if cut > 0:
            self.buffer = self.buffer[cut:]
            self.first += cut
        return out

    def _search(self, trigger: int, payload: Any) -> Resolved:
        at = trigger - self.first
        pre = self.buffer[max(0, at - self.pre) : at]
        window = self.buffer[at : at + self.max_lag + 1]
        lag_ms = f"{self.max_lag_s * 1e3:.0f} ms"
        if not (np.isfinite(pre).all() and np.isfinite(window).all()):
            detail = f"non-finite photodiode samples within {lag_ms} of the trigger"
            return Resolved(trigger, payload, None, detail)
        dark = float(np.median(pre)) if len(pre) else float(window[0])
        deviation = window - dark
        up, down = float(deviation.max()), float(-deviation.min())
        contrast = max(up, down)
        noise = 1.4826 * float(np.median(np.abs(pre - dark))) if len(pre) else 0.0
        if not contrast > self.min_contrast * noise:
            return Resolved(
                trigger, payload, None,
                f"no photodiode step within {lag_ms} after the trigger (contrast {contrast:.3g}, "
                f"pre-trigger noise {noise:.3g}); check the photodiode channel or raise "
                "bids.photodiode_max_lag_s",
            )  # fmt: skip
        rising = up >= down
        low = dark if rising else dark - contrast
        level = low + self.threshold * contrast  # as offline: a fraction of the way up from the low level
        seen = np.concatenate([[self.buffer[at - 1] if at >= 1 else dark], window])  # from trigger - 1
        lit = seen > level if rising else seen < level
        edges = np.flatnonzero(lit[1:] & ~lit[:-1])
        if not len(edges):  # lit throughout: no transition inside the window
            detail = f"the photodiode is lit from the trigger on (no edge within {lag_ms})"
            return Resolved(trigger, payload, None, detail)
        return Resolved(trigger, payload, trigger + int(edges[0]))
