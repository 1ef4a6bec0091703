"""Preprocessed-like epochs simulated directly, for experiments too large for the recording path.

The learning curve needs up to thousands of trials per subject, in two worlds, several times over; the
workflow's path (continuous FIF -> BIDS -> filtering -> epochs) would write ~20 GB per world. This module
draws the epochs of one subject straight at the preprocessed rate, from the same study: the same stimuli
and ground truth, the same anatomy, dipoles and forward fields (:func:`~megdecode.simulate.subject.
subject_anatomy`, :func:`~megdecode.simulate.sources.fixed_gain`), the same evoked responses and per-trial
variability (:func:`~megdecode.simulate.responses.trial_amplitudes`, :func:`~megdecode.simulate.responses.
trial_variables`). What differs is the noise, chosen so that its covariance is known in closed form (the
ceilings of :mod:`megdecode.learning_curve.oracle` need it):

- background activity: the simulator's ``n_brain_sources`` dipoles, each an independent stationary Gaussian
  process with the simulator's 1/f**exponent spectrum, band-limited to the preprocessing band
  ``[l_freq, h_freq]`` with the power the simulator gives that band;
- sensor noise: white, with the simulator's density over the band (variance density**2 x (h_freq - l_freq));
- no alpha bursts, line noise, drifts or bad channels (line noise and drifts are what the band-pass and
  the baseline remove; alpha is the one in-band source left out, a stated simplification).

The noise covariance of one epoch (channels x times, flattened) is then ``S (x) T + sigma**2 I`` with ``S``
the background's spatial covariance and ``T`` its temporal one: :class:`NoiseModel` diagonalises it exactly
with two small eigendecompositions. Units: fT. Epochs are *not* baseline-corrected here; the decoders'
inputs are (:func:`baseline_correct`), the ceilings see the epochs as drawn.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

import numpy as np
import pandas as pd

from megdecode.preprocessing.assemble import sensor_layout
from megdecode.simulate.params import SimulationParams
from megdecode.simulate.responses import code_amplitudes, gaussian_waves, trial_amplitudes, trial_variables
from megdecode.simulate.sensors import make_info
from megdecode.simulate.sources import Dipoles, fixed_gain
from megdecode.simulate.subject import subject_anatomy

FT_PER_T = 1e15
DIPOLE_ORDER = ("early", "late", "background")


@dataclasses.dataclass(frozen=True)
class EpochGrid:
    """The epoch time axis: ``tmin`` to ``tmax`` s around image onset at ``sfreq`` Hz, and the band."""

    tmin: float
    tmax: float
    sfreq: float
    l_freq: float
    h_freq: float

    @property
    def times(self) -> np.ndarray:
        n = int(round((self.tmax - self.tmin) * self.sfreq)) + 1
        return self.tmin + np.arange(n) / self.sfreq


def one_over_f_autocorrelation(
    lags_s: np.ndarray, exponent: float, band: tuple[float, float], full_band_hz: float, fmin: float = 0.1
) -> np.ndarray:
    """Autocovariance at ``lags_s`` of a process with power ~ 1/max(f, fmin)**exponent (zero at DC) and unit
    variance over ``(0, full_band_hz]`` (the simulator's normalisation), keeping only ``band`` (Hz)."""
    freqs = np.linspace(0.0, full_band_hz, int(full_band_hz / 0.002) + 1)[1:]
    power = 1.0 / np.maximum(freqs, fmin) ** exponent
    power /= power.sum()
    keep = (freqs >= band[0]) & (freqs <= band[1])
    return np.cos(2 * np.pi * np.outer(lags_s, freqs[keep])) @ power[keep]


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """Noise of one subject's epochs: covariance ``S (x) T + white_var I`` (channels x times, fT**2).

    ``mixing`` (channels, sources) maps unit-variance background sources to the sensors, so
    ``S = mixing @ mixing.T``; ``temporal`` is ``T`` (times, times)."""

    mixing: np.ndarray
    temporal: np.ndarray
    white_var: float

    def __post_init__(self) -> None:
        s, u = np.linalg.eigh(self.mixing @ self.mixing.T)
        t, v = np.linalg.eigh(self.temporal)
        object.__setattr__(self, "_basis", (u, v))
        object.__setattr__(
            self, "_weights", 1.0 / (np.outer(np.clip(s, 0, None), np.clip(t, 0, None)) + self.white_var)
        )
        object.__setattr__(self, "_temporal_root", v * np.sqrt(np.clip(t, 0, None)))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` noise epochs (n, channels, times) float32."""
        n_ch, n_src = self.mixing.shape
        n_t = len(self.temporal)
        sources = rng.standard_normal((n, n_src, n_t), dtype=np.float32) @ self._temporal_root.T.astype(
            np.float32
        )
        out = self.mixing.astype(np.float32) @ sources
        out += rng.standard_normal((n, n_ch, n_t), dtype=np.float32) * np.float32(np.sqrt(self.white_var))
        return out

    def whiten(self, epochs: np.ndarray) -> np.ndarray:
        """Epochs (n, channels, times) -> (n, channels * times) in a basis where the noise is white (float64):
        squared distances there are Mahalanobis distances under this covariance."""
        u, v = self._basis
        rotated = np.einsum("ci,nct,tj->nij", u, np.asarray(epochs, np.float64), v, optimize=True)
        return (rotated * np.sqrt(self._weights)).reshape(len(epochs), -1)


@dataclasses.dataclass(frozen=True)
class SensorArray:
    """What a device sees of one subject: its channels, their 2-D layout (the brain module's positions),
    the gain (channels, dipoles in :data:`DIPOLE_ORDER`; output unit per Am) and the white sensor noise's
    variance per sample over the band (output unit squared)."""

    channels: list[str]
    positions: np.ndarray
    gain: np.ndarray
    white_var: float


def subject_dipoles(anatomy: dict) -> Dipoles:
    """The subject's dipoles in :data:`DIPOLE_ORDER` (the gain's columns)."""
    dips = anatomy["dipoles"]
    return Dipoles(
        np.concatenate([dips[k].pos for k in DIPOLE_ORDER]),
        np.concatenate([dips[k].ori for k in DIPOLE_ORDER]),
        tuple(r for k in DIPOLE_ORDER for r in dips[k].region),
    )


def meg_sensors(params: SimulationParams, anatomy: dict, grid: EpochGrid) -> SensorArray:
    """The simulator's CTF-275 gradiometers (fT), with its white sensor noise over the band."""
    head = anatomy["head"]
    info = make_info(params.sfreq, head, datetime.datetime(2020, 1, 6, tzinfo=datetime.UTC))
    gain = fixed_gain(info, subject_dipoles(anatomy), np.asarray(head["sphere_r0"]), head["head_radius"])
    channels = [n for n in info["ch_names"] if n.startswith("M")]
    picks = [info["ch_names"].index(c) for c in channels]
    return SensorArray(
        channels=channels,
        positions=sensor_layout(np.array([info["chs"][i]["loc"][:3] for i in picks])),
        gain=gain * FT_PER_T,
        white_var=params.noise.sensor_ft_rthz**2 * (grid.h_freq - grid.l_freq),
    )


class EpochSimulator:
    """One subject of a simulated study, drawing epochs on ``grid`` (see the module docstring), as seen by
    ``sensors`` (default: the simulator's MEG, :func:`meg_sensors`)."""

    def __init__(
        self,
        params: SimulationParams,
        truth: dict,
        table: pd.DataFrame,
        grid: EpochGrid,
        seed: int,
        subject: str,
        sensors: SensorArray | None = None,
    ) -> None:
        self.params, self.truth, self.grid = params, truth, grid
        sensors = sensors or meg_sensors(params, subject_anatomy(params, seed, subject), grid)
        gain = sensors.gain
        n_e, n_l = params.early.n_dipoles, params.late.n_dipoles
        self.channels, self.positions = list(sensors.channels), sensors.positions
        self._gain_early, self._gain_late = gain[:, :n_e], gain[:, n_e : n_e + n_l]
        nz = params.noise
        lags = np.arange(len(grid.times)) / grid.sfreq
        temporal = one_over_f_autocorrelation(
            lags, nz.brain_exponent, (grid.l_freq, grid.h_freq), params.sfreq / 2
        )
        idx = np.abs(np.subtract.outer(np.arange(len(lags)), np.arange(len(lags))))
        self.noise = NoiseModel(
            mixing=gain[:, n_e + n_l :] * nz.brain_nam * 1e-9,
            temporal=temporal[idx],
            white_var=sensors.white_var,
        )
        self._by_id = table.set_index("image_id")
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _sensor_codes(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(channels, early latencies) and (channels, late latencies) fields of one image, fT."""
        if image_id not in self._codes:
            row = self._by_id.loc[image_id]
            attrs = {a: row[a] for a in ("shape", "colour", "texture")}
            a_e, a_l = trial_amplitudes(self.params, self.truth, image_id, "exp", attrs, row["concept"])
            self._codes[image_id] = (self._gain_early @ a_e, self._gain_late @ a_l)
        return self._codes[image_id]

    def _evoked(
        self, image_id: str, early_shift: np.ndarray, late_shift: np.ndarray, onset_s: float = 0.0
    ) -> np.ndarray:
        """Response (channels, times) to ``image_id`` shown ``onset_s`` s after the epoch's image."""
        g = self.grid
        n, start = len(g.times), float(g.times[0]) - onset_s
        e, lt = self._sensor_codes(image_id)
        return e @ gaussian_waves(self.params.early, early_shift, n, g.sfreq, start) + lt @ gaussian_waves(
            self.params.late, late_shift, n, g.sfreq, start
        )

    def mean_responses(self, image_ids: Sequence[str]) -> np.ndarray:
        """Noiseless responses (n, channels, times) at unit gain and zero latency shift, float64."""
        n_e, n_l = len(self.params.early.latencies), len(self.params.late.latencies)
        return np.stack([self._evoked(i, np.zeros(n_e), np.zeros(n_l)) for i in image_ids])

    def code_responses(self, onset_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The noiseless response of :meth:`mean_responses` as a function of the codes: the image-independent
        evoked response (channels, times), and the response to each unit entry of the early code
        (n_features, channels, times) and of the late code (n_late_codes, channels, times): an image with
        codes ``z``, ``v`` responds ``evoked + z @ early + v @ late`` (over channels x times). ``onset_s``:
        the image is shown that long after the epoch's own (as in :meth:`_evoked`)."""
        g, p = self.grid, self.params
        n, start = len(g.times), float(g.times[0]) - onset_s
        waves_early = gaussian_waves(p.early, np.zeros(len(p.early.latencies)), n, g.sfreq, start)
        waves_late = gaussian_waves(p.late, np.zeros(len(p.late.latencies)), n, g.sfreq, start)
        n_features = np.asarray(self.truth["components"]["early"]["weights"]).shape[1]
        n_late = p.late.n_dipoles * len(p.late.latencies)

        def response(early: np.ndarray, late: np.ndarray) -> np.ndarray:
            a_e, a_l = code_amplitudes(p, self.truth, early, late)
            return self._gain_early @ a_e @ waves_early + self._gain_late @ a_l @ waves_late

        evoked = response(np.zeros(n_features), np.zeros(n_late))
        early = np.stack([response(e, np.zeros(n_late)) - evoked for e in np.eye(n_features)])
        late = np.stack([response(np.zeros(n_features), v) - evoked for v in np.eye(n_late)])
        return evoked, early, late

    def draw(
        self, image_ids: Sequence[str], rngs: Sequence[np.random.Generator]
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Epochs (n, channels, times) float32, one trial per entry of ``image_ids`` drawn from its own
        generator in ``rngs`` (so a trial is the same whichever other trials are drawn with it), and the trial
        variables that generated them (gain, early and late latency shifts)."""
        if len(rngs) != len(image_ids):
            raise ValueError(f"need one generator per trial, got {len(rngs)} for {len(image_ids)} trials")
        out = np.empty((len(image_ids), len(self.channels), len(self.grid.times)), np.float32)
        rows = []
        for k, (image_id, rng) in enumerate(zip(image_ids, rngs, strict=True)):
            var = trial_variables(self.params, 1, rng)
            out[k] = self.noise.sample(1, rng)[0]
            out[k] += (var["gain"][0] * self._evoked(image_id, var["early"][0], var["late"][0])).astype(
                np.float32
            )
            rows.append([var["gain"][0], var["early"][0, 0], *var["late"][0]])
        values = np.round(np.asarray(rows, float).reshape(len(rows), -1), 6)
        late = [f"late_shift_{i}_s" for i in range(values.shape[1] - 2)]
        variables = pd.DataFrame(values, columns=["gain", "early_shift_s", *late])
        variables.insert(0, "image_id", list(image_ids))
        return out, variables


def baseline_correct(epochs: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Subtract each channel's pre-stimulus (t < 0) mean, in place; returns ``epochs``."""
    epochs -= epochs[:, :, times < 0].mean(axis=2, keepdims=True)
    return epochs
