"""The epoch time axis (from the preprocessed subject's info.json) and time windows within it.

Shared by training (a brain module trained on one listed window) and evaluation (sliding and growing windows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# window_kind of a brain module trained on a window of evaluation.timeresolved.brain_windows
LISTED = "listed"


@dataclass(frozen=True)
class Window:
    """A time window [tmin, tmax) in seconds relative to image onset."""

    kind: str
    tmin: float
    tmax: float

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.tmin * 1000:+.0f}_{self.tmax * 1000:+.0f}ms"

    @property
    def center(self) -> float:
        return (self.tmin + self.tmax) / 2


def listed_windows(bounds: Sequence[Sequence[float]]) -> list[Window]:
    """The windows the brain module is trained in (``evaluation.timeresolved.brain_windows``)."""
    return [Window(LISTED, float(a), float(b)) for a, b in bounds]


def epoch_times(info: Mapping[str, Any], n_times: int) -> np.ndarray:
    """Sample times (s) of the epochs from preprocessing's info.json."""
    try:
        sfreq, tmin = float(info["sfreq"]), float(info["tmin"])
    except KeyError as err:
        raise KeyError(f"info.json lacks {err}; rerun preprocessing") from None
    return tmin + np.arange(n_times) / sfreq


def window_samples(times: np.ndarray, window: Window) -> np.ndarray:
    """Sample indices with ``tmin <= t < tmax`` (half a sample of tolerance)."""
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    idx = np.flatnonzero((times >= window.tmin - dt / 2) & (times < window.tmax - dt / 2))
    if idx.size == 0:
        raise ValueError(
            f"window {window.name} holds no sample of the epoch ({times[0]:.3f}..{times[-1]:.3f} s)"
        )
    return idx
