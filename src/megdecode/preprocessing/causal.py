"""The causal front end (``preprocessing.phase: causal``): what an online system can compute.

Each output sample depends only on samples recorded before it, so a trial can be decoded as soon as
its window's last sample arrives:

1. Band-pass with an IIR Butterworth cascade in second-order sections (float64): a low-pass at
   ``h_freq`` (order ``causal_lowpass_order``) that is also the anti-alias filter of the decimation,
   and a high-pass at ``l_freq`` (order ``causal_highpass_order``). The filter state starts at the
   steady state of the recording's first sample (``sosfilt_zi``), so a DC offset gives no transient.
2. Decimation: every ``raw_sfreq / sfreq``-th filtered sample from ``sample + tmin`` (event-aligned grid,
   181 samples); the low-pass above is the causal anti-alias filter.
3. Baseline: the mean of the filtered full-rate samples in ``[baseline_tmin, baseline_tmax]``, which must
   end at or before the onset (pre-stimulus samples only).

:class:`CausalEpocher` does 1-3 on chunks of any size, keeping the filter state and a ring buffer of the
last window's filtered samples; the offline run job (:func:`epoch_causal`) and the online decoder
(:mod:`megdecode.online`) both use it, so the same recording gives the same epochs however it is chunked.
The price is the filter's group delay (a causal filter shifts each frequency later in time; see
:func:`filter_response` and docs/preprocessing.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from megdecode.preprocessing.epocher import (
    EpochResult,
    Window,
    check_flat,
    check_windows,
    nonfinite_message,
)
from megdecode.preprocessing.params import PreprocessingParams
from megdecode.preprocessing.reader import BadRunError


def causal_sos(params: PreprocessingParams, raw_sfreq: float) -> np.ndarray:
    """The causal band-pass as second-order sections (n_sections, 6), float64."""
    from scipy import signal

    low = signal.butter(params.causal_lowpass_order, params.h_freq, "lowpass", fs=raw_sfreq, output="sos")
    if params.l_freq is None:
        return np.asarray(low, dtype=np.float64)
    high = signal.butter(params.causal_highpass_order, params.l_freq, "highpass", fs=raw_sfreq, output="sos")
    return np.concatenate([low, high]).astype(np.float64)


@dataclass(frozen=True)
class FilterResponse:
    """Frequency response of a causal filter: gain (dB) and group delay (ms) per frequency (Hz)."""

    freqs: np.ndarray
    gain_db: np.ndarray
    delay_ms: np.ndarray

    def delay_at(self, freq: float) -> float:
        return float(np.interp(freq, self.freqs, self.delay_ms))

    def gain_at(self, freq: float) -> float:
        return float(np.interp(freq, self.freqs, self.gain_db))


def filter_response(sos: np.ndarray, sfreq: float, freqs: np.ndarray | None = None) -> FilterResponse:
    """Gain and group delay of ``sos`` at ``freqs`` (default: 0.05 Hz to Nyquist, log-spaced)."""
    from scipy import signal

    if freqs is None:
        freqs = np.geomspace(0.05, sfreq / 2 * 0.999, 512)
    freqs = np.asarray(freqs, dtype=np.float64)
    _, h = signal.sosfreqz(sos, worN=freqs, fs=sfreq)
    delay = np.zeros_like(freqs)
    for section in sos:  # the cascade's group delay is the sum of its sections'
        _, d = signal.group_delay((section[:3], section[3:]), w=freqs, fs=sfreq)
        delay += d
    gain = 20 * np.log10(np.maximum(np.abs(h), 1e-300))
    return FilterResponse(freqs, gain, 1e3 * delay / sfreq)


def causal_window(params: PreprocessingParams, raw_sfreq: float, run: str) -> Window:
    """The epoch window (:class:`~megdecode.preprocessing.epocher.Window`) of the causal chain, whose
    baseline must end by the onset."""
    window = Window.from_params(params, raw_sfreq, run)
    if window.b1 > 0:
        raise BadRunError(
            f"run {run}: preprocessing.baseline_tmax ({params.baseline_tmax} s) is after the onset; "
            "phase: causal takes the baseline from pre-stimulus samples only (set baseline_tmax <= 0)"
        )
    return window


class CausalEpocher:
    """Causal band-pass + event-aligned decimation + baseline over a stream fed in chunks of any size.

    ``feed(chunk)`` filters (channels, n) raw samples; ``epoch(onset)`` returns the (channels, n_times)
    baselined epoch of an onset whose window has fully arrived (``ready(onset)``), float32.
    """

    def __init__(self, sos: np.ndarray, n_channels: int, window: Window, block: int = 4096) -> None:
        from scipy import signal

        self.sos = np.asarray(sos, dtype=np.float64)
        self.window = window
        self.n_channels = int(n_channels)
        self.block = int(block)
        self.capacity = window.span + self.block
        self.ring = np.zeros((self.n_channels, self.capacity), dtype=np.float64)
        self.n_seen = 0  # raw samples filtered so far
        self._zi_unit = signal.sosfilt_zi(self.sos)  # (sections, 2): steady state for a unit step
        self.zi: np.ndarray | None = None  # (sections, channels, 2): scipy.signal.sosfilt's filter state
        self._sosfilt = signal.sosfilt
        self._grid = window.factor * np.arange(window.n_times)
        self._baseline = np.arange(window.b0, window.b1 + 1)

    def feed(self, chunk: np.ndarray, in_place: bool = False) -> None:
        """Filter the next raw samples (channels, n <= block) and keep them in the ring buffer.

        ``chunk`` is never modified (``in_place`` is accepted for callers written when it was).
        """
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(f"expected ({self.n_channels}, n) samples, got {x.shape}")
        if x.shape[1] == 0:
            return
        if x.shape[1] > self.block:
            raise ValueError(
                f"{x.shape[1]} samples fed at once; at most {self.block} (block), so that no completed "
                "window leaves the ring buffer before it is read: split the chunk"
            )
        if self.zi is None:
            self.zi = self._zi_unit[:, None, :] * x[None, :, 0, None]
        y, self.zi = self._sosfilt(self.sos, x, axis=-1, zi=self.zi)
        start, n = self.n_seen % self.capacity, x.shape[1]
        first = min(n, self.capacity - start)  # the ring wraps at most once (n <= block < capacity)
        self.ring[:, start : start + first] = y[:, :first]
        self.ring[:, : n - first] = y[:, first:]
        self.n_seen += n

    def ready(self, onset: int) -> bool:
        """Whether the last sample of ``onset``'s window has been fed."""
        return onset + self.window.t1 < self.n_seen

    def available(self, onset: int) -> bool:
        """Whether the window's first sample is still in the ring buffer."""
        return onset + min(self.window.t0, self.window.b0) >= self.n_seen - self.capacity

    def baseline(self, onset: int) -> np.ndarray:
        """(channels,) pre-stimulus mean (float64); needs ``onset + b1`` fed."""
        return self.ring[:, (onset + self._baseline) % self.capacity].mean(axis=1)

    def samples(self, onset: int, start: int, stop: int) -> np.ndarray:
        """Decimated window samples ``start:stop`` (not baselined), float64 (channels, stop - start)."""
        idx = (onset + self.window.t0 + self._grid[start:stop]) % self.capacity
        return self.ring[:, idx]

    def epoch(self, onset: int) -> np.ndarray:
        """(channels, n_times) float32: the decimated window minus its pre-stimulus baseline."""
        if not self.ready(onset):
            raise ValueError(f"onset {onset}: window not complete ({self.n_seen} samples fed)")
        if not self.available(onset):
            raise ValueError(f"onset {onset}: window left the ring buffer (feed in smaller blocks)")
        out = self.samples(onset, 0, self.window.n_times) - self.baseline(onset)[:, None]
        return out.astype(np.float32)


def epoch_causal(
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
) -> EpochResult:
    """Epoch a whole recording with the causal front end (offline; chunk by chunk like an online system):
    the causal :class:`~megdecode.preprocessing.epocher.Epocher` (``workers`` unused: the IIR filter runs
    on one thread)."""
    window = causal_window(params, raw_sfreq, run)
    rows = np.arange(n_channels) if rows is None else np.asarray(rows, dtype=np.int64)
    samples = np.asarray(samples, dtype=np.int64)
    check_windows(samples, n_samples, window, run)
    if np.any(samples + window.b0 < 0):
        raise BadRunError(f"run {run}: an event's baseline window starts before the recording")
    step = max(window.factor, int(params.chunk_s * raw_sfreq) // window.factor * window.factor)
    epocher = CausalEpocher(causal_sos(params, raw_sfreq), len(rows), window, block=step)
    order = np.argsort(samples, kind="stable")
    epochs = np.empty((len(samples), len(rows), window.n_times), dtype=np.float32)
    stream_parts = []
    k = 0
    for a in range(0, n_samples, step):
        x = np.asarray(read(a, min(n_samples, a + step)))[rows]
        if not np.isfinite(x.sum(axis=1)).all():
            raise BadRunError(nonfinite_message(read, rows, names, a, n_samples, step, raw_sfreq, run))
        epocher.feed(x)
        stream_parts.append(epocher.ring[:, (a + np.arange(0, x.shape[1], window.factor)) % epocher.capacity])
        while k < len(order) and epocher.ready(int(samples[order[k]])):
            epochs[order[k]] = epocher.epoch(int(samples[order[k]]))
            k += 1
    stream = np.concatenate(stream_parts, axis=1).astype(np.float32)
    ptp = (stream.max(axis=1) - stream.min(axis=1)).astype(np.float64)
    check_flat(ptp, params, names, run)
    return EpochResult(data=epochs, times=window.times(raw_sfreq), stream=stream, raw_ptp=ptp)
