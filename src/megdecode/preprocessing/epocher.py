"""What the two epoching chains share: one interface, the epoch window, the checks, the result.

An epocher turns a continuous recording and its event samples into decimated, baselined epochs::

    epocher(read, n_samples, n_channels, raw_sfreq, samples, params, run, rows=None, names=None, workers=1)

``read(start, stop)`` returns ``n_channels`` rows of float data for samples ``[start, stop)``; ``rows``
selects the rows kept (default: all), ``names`` names them (for messages); ``samples`` are the event samples
(0 = first sample of the recording). It returns an :class:`EpochResult`. Two implement it:
:func:`megdecode.preprocessing.signal.epoch_continuous` (zero-phase, the paper's chain) and
:func:`megdecode.preprocessing.causal.epoch_causal` (causal, what an online system can compute);
:func:`epocher_for` picks the one of ``preprocessing.phase``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from megdecode.preprocessing.params import PreprocessingParams
from megdecode.preprocessing.reader import BadRunError


@dataclass
class EpochResult:
    """What an epocher returns."""

    data: np.ndarray  # float32 (events, channels, times) at the output rate
    times: np.ndarray  # seconds, (times,)
    stream: np.ndarray  # float32 (channels, samples): decimated, filtered continuous signal (for QC)
    raw_ptp: np.ndarray  # float64 (channels,) peak-to-peak of the filtered continuous signal


class Epocher(Protocol):
    def __call__(
        self,
        read: Callable[[int, int], np.ndarray],
        n_samples: int,
        n_channels: int,
        raw_sfreq: float,
        samples: np.ndarray,
        params: PreprocessingParams,
        run: str = "run",
        rows: np.ndarray | None = None,
        names: list[str] | None = None,
        workers: int = 1,
    ) -> EpochResult: ...


def epocher_for(phase: str) -> Epocher:
    """The epocher of ``preprocessing.phase`` (``zero`` or ``causal``)."""
    if phase == "causal":
        from megdecode.preprocessing.causal import epoch_causal

        return epoch_causal
    from megdecode.preprocessing.signal import epoch_continuous

    return epoch_continuous


def decimation_factor(raw_sfreq: float, sfreq: float, run: str) -> int:
    """Integer ratio between the recording's rate and the output rate, or a clear error."""
    factor = raw_sfreq / sfreq
    if abs(factor - round(factor)) > 1e-6 or round(factor) < 1:
        raise BadRunError(
            f"run {run}: recording rate {raw_sfreq} Hz is not an integer multiple of preprocessing.sfreq "
            f"({sfreq} Hz); choose an sfreq that divides the recording rate"
        )
    return int(round(factor))


@dataclass(frozen=True)
class Window:
    """An epoch window in raw samples relative to the onset, and its decimation (both phases)."""

    t0: int  # first sample (tmin * raw_sfreq)
    t1: int  # last sample (inclusive)
    factor: int  # decimation factor
    b0: int  # baseline window, inclusive, relative to the onset
    b1: int
    n_times: int  # output samples

    @classmethod
    def from_params(cls, params: PreprocessingParams, raw_sfreq: float, run: str) -> Window:
        """The window of ``params`` at ``raw_sfreq``; an error if tmin/tmax are off the output grid."""
        factor = decimation_factor(raw_sfreq, params.sfreq, run)
        t0, t1 = round(params.tmin * raw_sfreq), round(params.tmax * raw_sfreq)
        n_times = params.n_times()
        if t0 + factor * (n_times - 1) != t1:
            raise BadRunError(
                f"run {run}: tmin/tmax ({params.tmin}, {params.tmax}) are not on the {params.sfreq} Hz grid"
            )
        b0 = t0 if params.baseline_tmin is None else round(params.baseline_tmin * raw_sfreq)
        return cls(t0, t1, factor, b0, round(params.baseline_tmax * raw_sfreq), n_times)

    @property
    def span(self) -> int:
        """Raw samples a trial needs, from the first of its window or baseline to the last."""
        return self.t1 - min(self.t0, self.b0) + 1

    @property
    def grid(self) -> np.ndarray:
        """The output samples' offsets from the window's first raw sample."""
        return self.factor * np.arange(self.n_times)

    def times(self, raw_sfreq: float) -> np.ndarray:
        """The output samples' times (s) relative to the onset."""
        return (self.t0 + self.grid) / raw_sfreq


def check_windows(samples: np.ndarray, n_samples: int, window: Window, run: str) -> None:
    """Fail when any epoch window ``[sample + t0, sample + t1]`` leaves the recording."""
    bad = (samples + window.t0 < 0) | (samples + window.t1 >= n_samples)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise BadRunError(
            f"run {run}: {int(bad.sum())} event(s) have epochs outside the recording "
            f"(first: sample {int(samples[first])}, recording has {n_samples} samples); check events.tsv "
            "'sample'/'onset' or shorten the epoch (preprocessing.tmin/tmax)"
        )


def channel_names(index: np.ndarray, names: list[str] | None) -> list[str]:
    """Names of kept channels ``index`` (positions in ``rows``), or ``#i`` when names are not given."""
    return [names[i] if names is not None else f"#{i}" for i in np.asarray(index).tolist()]


def check_flat(ptp: np.ndarray, params: PreprocessingParams, names: list[str] | None, run: str) -> None:
    """Fail on channels whose peak-to-peak is at most ``flat_ratio`` times the median: no signal."""
    flat = ptp <= params.flat_ratio * np.median(ptp)
    if flat.any():
        flat_names = channel_names(np.flatnonzero(flat), names)
        raise BadRunError(
            f"run {run}: flat MEG channel(s) {flat_names[:10]}"
            f"{f' and {len(flat_names) - 10} more' if len(flat_names) > 10 else ''} (no signal); "
            f"add them to preprocessing.bad_channels, e.g. bad_channels: [{', '.join(flat_names[:10])}]"
        )


def nonfinite_message(read, rows, names, start, n_samples, step, sfreq, run) -> str:
    """Name every kept channel with NaN/inf from ``start`` on, with the span of samples and seconds."""
    first = np.full(len(rows), -1, dtype=np.int64)
    last = np.full(len(rows), -1, dtype=np.int64)
    count = np.zeros(len(rows), dtype=np.int64)
    for a in range(start, n_samples, step):
        bad = ~np.isfinite(np.asarray(read(a, min(n_samples, a + step)))[rows])
        ch, t = np.nonzero(bad)
        if ch.size:
            np.add.at(count, ch, 1)
            for c in np.unique(ch):
                at = t[ch == c] + a
                first[c] = at.min() if first[c] < 0 else first[c]
                last[c] = at.max()
    hit = np.flatnonzero(count)
    labels = channel_names(hit, names)
    spans = [
        f"{label}: {count[c]} sample(s) between {first[c] / sfreq:.3f} s and {last[c] / sfreq:.3f} s "
        f"(samples {first[c]}-{last[c]})"
        for label, c in zip(labels[:10], hit[:10], strict=False)
    ]
    more = f"; and {len(hit) - 10} more channel(s)" if len(hit) > 10 else ""
    return (
        f"run {run}: MEG channel(s) contain NaN or infinite values: {'; '.join(spans)}{more}. Drop them "
        f"with preprocessing.bad_channels (e.g. bad_channels: [{', '.join(labels[:10])}]) or repair the "
        "recording"
    )
