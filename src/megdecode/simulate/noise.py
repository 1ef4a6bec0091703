"""Noise generators (float32, FFT-shaped): 1/f background, alpha bursts, line noise, drift."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def colored_noise(
    n_series: int, n_times: int, sfreq: float, exponent: float, rng: np.random.Generator, fmin: float = 0.1
) -> np.ndarray:
    """Unit-RMS noise with power ~ 1/f**exponent above ``fmin`` (n_series, n_times)."""
    n_fft = sfft.next_fast_len(n_times, real=True)
    freqs = np.fft.rfftfreq(n_fft, 1 / sfreq)
    shape = (1.0 / np.maximum(freqs, fmin) ** (exponent / 2)).astype(np.float32)
    shape[0] = 0.0
    spec = np.empty((n_series, len(freqs)), np.complex64)
    spec.real = rng.standard_normal((n_series, len(freqs)), dtype=np.float32)
    spec.imag = rng.standard_normal((n_series, len(freqs)), dtype=np.float32)
    spec *= shape
    x = sfft.irfft(spec, n=n_fft, axis=1)[:, :n_times].astype(np.float32, copy=False)
    x /= x.std(axis=1, keepdims=True) + 1e-30
    return x


def lowpass_envelope(n_times: int, sfreq: float, cutoff: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random positive envelope (bursts) with energy below ``cutoff`` Hz, peak-normalised."""
    n_fft = sfft.next_fast_len(n_times, real=True)
    freqs = np.fft.rfftfreq(n_fft, 1 / sfreq)
    spec = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * (freqs < cutoff)
    x = sfft.irfft(spec, n=n_fft)[:n_times]
    env = np.clip(x - 0.5 * x.std(), 0, None)
    return (env / (env.max() + 1e-30)).astype(np.float32)


def alpha_bursts(
    n_series: int, n_times: int, sfreq: float, freq: float, rng: np.random.Generator
) -> np.ndarray:
    """Waxing/waning oscillations near ``freq`` Hz with wandering phase, unit peak envelope."""
    t = np.arange(n_times) / sfreq
    out = np.empty((n_series, n_times), np.float32)
    for i in range(n_series):
        f = freq + rng.normal(0, 0.3)
        # phase wanders as a random walk (knots every 0.1 s), so the rhythm is not a pure line
        knots = np.cumsum(rng.normal(0, 0.3, n_times // max(1, int(0.1 * sfreq)) + 2))
        phase_walk = np.interp(t, np.arange(len(knots)) * 0.1, knots)
        out[i] = np.sin(2 * np.pi * f * t + phase_walk) * lowpass_envelope(n_times, sfreq, 0.5, rng)
    return out


def line_noise(n_times: int, sfreq: float, freq: float, rng: np.random.Generator) -> np.ndarray:
    """Mains interference: fundamental plus a weaker second harmonic (below Nyquist), unit amplitude."""
    t = np.arange(n_times) / sfreq
    x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    if 2 * freq < sfreq / 2:
        x += 0.3 * np.sin(2 * np.pi * 2 * freq * t + rng.uniform(0, 2 * np.pi))
    return x.astype(np.float32)


def slow_drift(n_series: int, n_times: int, sfreq: float, rng: np.random.Generator) -> np.ndarray:
    """Random-walk drifts (knots every 2 s, linearly interpolated), unit RMS per series."""
    step = int(2 * sfreq)
    n_knots = n_times // step + 2
    knots = np.cumsum(rng.standard_normal((n_series, n_knots)), axis=1)
    knots -= knots.mean(axis=1, keepdims=True)
    pos = np.arange(n_times) / step
    out = np.empty((n_series, n_times), np.float32)
    for i in range(n_series):
        out[i] = np.interp(pos, np.arange(n_knots), knots[i])
    out /= out.std(axis=1, keepdims=True) + 1e-30
    return out
