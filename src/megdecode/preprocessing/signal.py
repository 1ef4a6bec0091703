"""The fast epoching chain: low-pass + event-aligned decimation, high-pass at the low rate, baseline.

Equivalent to the plain MNE chain (band-pass the continuous raw, Epochs with baseline, decimate) because
MNE's FIR band-pass is ``low-pass(h_freq) - low-pass(l_freq / 2)`` and every step is linear:

1. The continuous recording is read in time chunks (float32, never the whole run in float64), low-passed
   with MNE's own ``h_freq`` FIR (a short filter) by FFT overlap-save.
2. Epoch samples are gathered at the *event-aligned* decimated grid ``sample + t0 + D*j`` (exact; no
   FFT resampling, so no timing shift and 181 samples). The stopband of the low-pass ends below the new
   Nyquist frequency, so decimating after it does not alias.
3. The slow drift that the high-pass removes (``x - highpass(x)``, below ~0.1 Hz) is computed once on
   the decimated continuous stream with MNE's high-pass FIR, interpolated to each epoch sample and
   subtracted: the long (33 s) high-pass filter runs at 120 Hz instead of 1200 Hz.
4. Baseline: the pre-stimulus mean per channel, taken on the full-rate low-passed data as MNE does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy.signal import firwin

from megdecode.preprocessing.epocher import (
    EpochResult,
    Window,
    check_flat,
    check_windows,
    nonfinite_message,
)
from megdecode.preprocessing.params import PreprocessingParams
from megdecode.preprocessing.reader import BadRunError

log = logging.getLogger(__name__)


def fir_length(transition: float, sfreq: float) -> int:
    """MNE's FIR length for a Hamming-window design: ``round(3.3 * sfreq / transition)``, made odd."""
    n = int(round(3.3 * sfreq / transition))
    return n + 1 - n % 2


def lowpass_kernel(raw_sfreq: float, h_freq: float, out_sfreq: float, run: str) -> np.ndarray:
    """The low-pass half of MNE's default FIR band-pass at ``h_freq`` (firwin, hamming, auto transition).

    Checks that its stopband edge lies below the output Nyquist frequency so decimation cannot alias.
    """
    h_trans = min(max(h_freq * 0.25, 2.0), raw_sfreq / 2.0 - h_freq)
    if h_freq + h_trans > out_sfreq / 2.0 + 1e-9:
        raise BadRunError(
            f"run {run}: low-pass stopband ends at {h_freq + h_trans} Hz, above the output Nyquist "
            f"frequency {out_sfreq / 2} Hz; decimation would alias (lower h_freq or raise sfreq)"
        )
    return firwin(
        fir_length(h_trans, raw_sfreq), h_freq + h_trans / 2, window="hamming", fs=raw_sfreq
    ).astype(np.float32)


def highpass_drift_kernel(l_freq: float, sfreq: float) -> np.ndarray:
    """The low-pass that MNE's FIR high-pass at ``l_freq`` subtracts (cutoff ``l_freq - l_trans/2``)."""
    l_trans = min(max(l_freq * 0.25, 2.0), l_freq)
    return firwin(fir_length(l_trans, sfreq), l_freq - l_trans / 2, window="hamming", fs=sfreq)


def fir_valid(x: np.ndarray, kernel: np.ndarray, workers: int = 1, n_fft: int = 8192) -> np.ndarray:
    """'valid' FIR convolution along the last axis by FFT overlap-save, in the input's float dtype."""
    n_taps = kernel.shape[-1]
    n_out = x.shape[-1] - n_taps + 1
    if n_out <= 0:
        raise ValueError(f"signal ({x.shape[-1]} samples) shorter than the filter ({n_taps} taps)")
    n_fft = max(n_fft, int(2 ** np.ceil(np.log2(4 * n_taps))))  # at most ~25% of each block overlaps
    step = n_fft - n_taps + 1
    spectrum = sfft.rfft(kernel.astype(x.dtype), n_fft)
    out = np.empty(x.shape[:-1] + (n_out,), dtype=x.dtype)
    for start in range(0, n_out, step):
        seg = x[..., start : start + n_fft]
        spec = sfft.rfft(seg, n_fft, axis=-1, workers=workers)
        spec *= spectrum
        block = sfft.irfft(spec, n_fft, axis=-1, workers=workers, overwrite_x=True)
        m = min(step, n_out - start)
        out[..., start : start + m] = block[..., n_taps - 1 : n_taps - 1 + m]
    return out


def _odd_reflect_pad(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """MNE's 'reflect_limited' edge padding (odd reflection about the edge sample)."""
    if left == 0 and right == 0:
        return x
    return np.pad(x, ((0, 0), (left, right)), mode="reflect", reflect_type="odd")


def epoch_continuous(
    read,
    n_samples: int,
    n_channels: int,
    raw_sfreq: float,
    samples: np.ndarray,
    params: PreprocessingParams,
    run: str = "run",
    workers: int = 1,
    progress: bool = False,
    rows: np.ndarray | None = None,
    names: list[str] | None = None,
) -> EpochResult:
    """Epoch a continuous recording with the paper's chain (the zero-phase
    :class:`~megdecode.preprocessing.epocher.Epocher`).

    ``read(start, stop)`` returns ``n_channels`` rows of float data for samples ``[start, stop)``;
    ``rows`` selects the rows to keep (default: all; reading a contiguous block of channels and dropping
    rows at the end is cheaper than selecting on every read). ``samples`` are the event samples
    (0 = first sample of the recording). ``names`` are the channel names of ``rows`` (for messages).
    """
    window = Window.from_params(params, raw_sfreq, run)
    kernel = lowpass_kernel(raw_sfreq, params.h_freq, params.sfreq, run)
    samples = np.asarray(samples, dtype=np.int64)
    rows = np.arange(n_channels) if rows is None else np.asarray(rows, dtype=np.int64)
    check_windows(samples, n_samples, window, run)
    low = _lowpass_epochs(
        read, n_samples, n_channels, raw_sfreq, samples, params, window, kernel, rows, names, run, workers,
        progress,
    )  # fmt: skip
    stream, epochs, baseline = low.stream[rows], low.epochs[:, rows], low.baseline[:, rows]
    ptp = (stream.max(axis=1) - stream.min(axis=1)).astype(np.float64)  # of the low-passed signal
    check_flat(ptp, params, names, run)
    if params.l_freq is not None:
        _subtract_drift(stream, epochs, baseline, samples, window, params, low.first[rows], low.last[rows],
                        -low.offset[rows, 0])  # fmt: skip
    epochs -= baseline[..., None].astype(np.float32)
    return EpochResult(data=epochs, times=window.times(raw_sfreq), stream=stream, raw_ptp=ptp)


@dataclass
class _LowPassed:
    """Every channel read, low-passed at the full rate: the decimated stream, the epochs (not baselined),
    the baseline means, the first and last samples (offset removed) and the offset removed."""

    stream: np.ndarray
    epochs: np.ndarray
    baseline: np.ndarray
    first: np.ndarray
    last: np.ndarray
    offset: np.ndarray


def _lowpass_epochs(
    read,
    n_samples,
    n_channels,
    raw_sfreq,
    samples,
    params,
    window,
    kernel,
    rows,
    names,
    run,
    workers,
    progress,
) -> _LowPassed:
    """Steps 1, 2 and 4 of the chain, chunk by chunk: low-pass, gather the epochs on the event-aligned
    decimated grid and their baseline means, and keep the decimated continuous stream."""
    from tqdm import tqdm

    half = kernel.size // 2
    factor, t0, b0, b1 = window.factor, window.t0, window.b0, window.b1
    step = max(factor, int(params.chunk_s * raw_sfreq) // factor * factor)
    span = window.t1 - t0 + 1
    chunk_of = (samples + t0) // step
    n_stream = (n_samples - 1) // factor + 1
    stream = np.empty((n_channels, n_stream), dtype=np.float32)
    epochs = np.empty((len(samples), n_channels, window.n_times), dtype=np.float32)
    baseline = np.empty((len(samples), n_channels), dtype=np.float64)
    offset = None
    grid = window.grid
    starts = range(0, n_samples, step)
    for chunk, a in enumerate(tqdm(starts, desc=f"filter {run}", disable=not progress, mininterval=2)):
        e = min(n_samples, a + step + span)
        lo, hi = max(0, a - half), min(n_samples, e + half)
        x = np.asarray(read(lo, hi))
        if offset is None:
            offset = x.mean(axis=1, keepdims=True)
            offset[~np.isfinite(offset)] = 0.0
        x32 = np.empty(x.shape, dtype=np.float32)
        np.subtract(x, offset, out=x32, casting="same_kind")
        x = x32
        finite = np.isfinite(x.sum(axis=1))  # NaN/inf propagate into the row sum: one cheap pass
        if not finite[rows].all():
            raise BadRunError(nonfinite_message(read, rows, names, lo, n_samples, step, raw_sfreq, run))
        if not finite.all():  # only in rows that are dropped: keep them from spreading
            x[~finite] = 0.0
        if lo == 0:
            first = x[:, 0].astype(np.float64)
        if hi == n_samples:
            last = x[:, -1].astype(np.float64)
        x = _odd_reflect_pad(x, half - (a - lo), half - (hi - e))
        lp = fir_valid(x, kernel, workers=workers)  # covers [a, e)
        stream_part = lp[:, : min(step, n_samples - a) : factor]
        stream[:, a // factor : a // factor + stream_part.shape[1]] = stream_part
        sel = np.flatnonzero(chunk_of == chunk)
        if sel.size:
            idx = (samples[sel, None] + t0 - a) + grid[None, :]
            epochs[sel] = lp[:, idx].transpose(1, 0, 2)
            for k, s in zip(sel, samples[sel], strict=True):
                baseline[k] = lp[:, s + b0 - a : s + b1 + 1 - a].mean(axis=1)
    return _LowPassed(stream, epochs, baseline, first, last, offset)


def _subtract_drift(
    stream: np.ndarray,
    epochs: np.ndarray,
    baseline: np.ndarray,
    samples: np.ndarray,
    window: Window,
    params: PreprocessingParams,
    first: np.ndarray,
    last: np.ndarray,
    zero: np.ndarray,
) -> None:
    """Step 3, in place: the slow drift the high-pass removes, computed on the decimated stream, taken off
    the stream, the epochs and their baseline means."""
    drift = _drift(stream, params, first, last, zero)
    stream -= drift
    at_epochs = _interp(drift, samples + window.t0, window.factor, window.n_times)
    epochs -= at_epochs
    offsets = window.t0 + window.grid
    in_bl = (offsets >= window.b0) & (offsets <= window.b1)
    baseline -= at_epochs[..., in_bl].mean(axis=-1)


def _drift(
    stream: np.ndarray, params: PreprocessingParams, first: np.ndarray, last: np.ndarray, zero: np.ndarray
) -> np.ndarray:
    """What MNE's high-pass at ``l_freq`` removes (its low-pass part), on the decimated stream (float32).

    The edges are padded as MNE pads the full-rate signal: odd reflection about the recording's first and
    last raw samples (``first``, ``last``), so the drift near the ends matches the plain chain. When the
    recording is shorter than the filter, MNE's 'reflect_limited' reflects the whole recording and its
    FIR convolution sees zeros beyond it: zeros of the raw signal, i.e. ``zero`` (per channel) in the
    offset-removed stream. Filling them with anything else (the old ``2 * first``) changed the epochs of a
    2 s recording by 0.55 relative RMS (docs/preprocessing.md).
    """
    kernel = highpass_drift_kernel(params.l_freq, params.sfreq)
    half = kernel.size // 2
    x = stream
    n = x.shape[1]
    left = _padding(x, half, first, zero, start=True)
    right = _padding(x, half, last, zero, start=False)
    return fir_valid(np.concatenate([left, x, right], axis=1), kernel.astype(np.float32))[:, :n]


def _padding(x: np.ndarray, n_pad: int, edge: np.ndarray, zero: np.ndarray, start: bool) -> np.ndarray:
    """``n_pad`` samples of MNE's 'reflect_limited' padding: the signal odd-reflected about ``edge`` (the
    recording's first or last raw sample), then ``zero`` (the raw signal's 0) beyond what it can mirror,
    placed away from the signal."""
    n = x.shape[1]
    k = min(n_pad, n - 1)
    edge = edge[:, None].astype(np.float32)
    mirror = 2 * edge - (x[:, k:0:-1] if start else x[:, -2 : -k - 2 : -1])
    zeros = np.repeat(zero[:, None].astype(np.float32), n_pad - k, axis=1)
    return np.concatenate([zeros, mirror], axis=1) if start else np.concatenate([mirror, zeros], axis=1)


def _interp(signal: np.ndarray, starts: np.ndarray, factor: int, n_times: int) -> np.ndarray:
    """``signal`` (channels, n), sampled every ``factor`` raw samples, linearly interpolated at the raw
    samples ``starts[e] + factor * j`` (j < n_times) -> (events, channels, n_times).

    Every sample of one epoch has the same fractional position, so each epoch reads two contiguous slices.
    """
    base, rest = np.divmod(np.asarray(starts, dtype=np.int64), factor)
    padded = np.concatenate([signal, signal[:, -1:]], axis=1)  # the last epoch may reach one past the end
    out = np.empty((len(base), signal.shape[0], n_times), dtype=np.float32)
    for e, (b, r) in enumerate(zip(base, rest, strict=True)):
        frac = np.float32(r / factor)
        np.multiply(padded[:, b : b + n_times], 1 - frac, out=out[e])
        out[e] += frac * padded[:, b + 1 : b + n_times + 1]
    return out
