"""The causal front end (preprocessing.phase: causal): chunking invariance, causality, delay, run jobs."""

from __future__ import annotations

import numpy as np
import pytest
from test_preprocessing import _run_job, _stimuli, _write_run, pre_cfg

from megdecode.io import load_npy
from megdecode.preprocessing.causal import (
    CausalEpocher,
    Window,
    causal_sos,
    epoch_causal,
    filter_response,
)
from megdecode.preprocessing.params import PreprocessingParams

CAUSAL = PreprocessingParams.from_config(pre_cfg(phase="causal"))
SFREQ = 360.0


def _recording(n_channels=3, seconds=8.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SFREQ)
    x = 1e-12 * rng.standard_normal((n_channels, n)).cumsum(axis=1) * 0.05 + 2e-10  # drift + DC offset
    samples = np.array([200, 560, 700, 1400, 2100])  # overlapping windows (700 follows 560 closely)
    return x, samples


def _chunked(x, samples, sizes):
    window = Window.from_params(CAUSAL, SFREQ, "r")
    epocher = CausalEpocher(causal_sos(CAUSAL, SFREQ), x.shape[0], window, block=64)
    out, k, a, i = {}, 0, 0, 0
    while a < x.shape[1]:
        m = sizes[i % len(sizes)]
        for b in range(a, min(a + m, x.shape[1]), epocher.block):  # pieces of at most `block` samples
            epocher.feed(x[:, b : min(b + epocher.block, a + m)])
            while k < len(samples) and epocher.ready(int(samples[k])):
                out[k] = epocher.epoch(int(samples[k]))
                k += 1
        a, i = a + m, i + 1
    return np.stack([out[j] for j in range(len(samples))])


@pytest.mark.parametrize("sizes", [[1], [12], [5, 1, 37, 2, 200], [10**6]])
def test_chunking_gives_the_offline_epochs(sizes):
    x, samples = _recording()
    offline = epoch_causal(lambda a, b: x[:, a:b], x.shape[1], x.shape[0], SFREQ, samples, CAUSAL).data
    online = _chunked(x, samples, sizes if sizes != [10**6] else [x.shape[1]])
    assert offline.shape == (5, 3, 181)
    np.testing.assert_allclose(online, offline, rtol=0, atol=1e-6 * np.abs(offline).max())


def test_epoch_depends_on_past_samples_only():
    """Changing samples after a window's last sample leaves its epoch unchanged; inside, it changes it."""
    x, samples = _recording()
    window = Window.from_params(CAUSAL, SFREQ, "r")

    def epochs(data):
        return epoch_causal(
            lambda a, b: data[:, a:b], data.shape[1], data.shape[0], SFREQ, samples, CAUSAL
        ).data

    base = epochs(x)
    later = x.copy()
    later[:, samples[2] + window.t1 + 1 :] += 1e-9
    changed = epochs(later)
    np.testing.assert_array_equal(changed[:3], base[:3])
    assert np.abs(changed[3:] - base[3:]).max() > 0
    inside = x.copy()
    inside[:, samples[2] + window.t1] += 1e-9
    assert np.abs(epochs(inside)[2, :, -1] - base[2, :, -1]).max() > 0


def test_group_delay_is_what_a_burst_shows_and_passband_is_flat():
    """A 10 Hz Gaussian burst comes out later by the documented group delay at 10 Hz."""
    from scipy import signal

    sfreq = 1200.0
    sos = causal_sos(CAUSAL, sfreq)
    response = filter_response(sos, sfreq)
    assert abs(response.gain_at(10.0)) < 0.1 and response.gain_at(CAUSAL.sfreq / 2) < -20
    t = np.arange(int(4 * sfreq)) / sfreq
    envelope = np.exp(-0.5 * ((t - 2.0) / 0.15) ** 2)
    y = signal.sosfilt(sos, envelope * np.sin(2 * np.pi * 10 * t))
    analytic = np.abs(signal.hilbert(y))
    measured_ms = 1e3 * (t[np.argmax(analytic)] - 2.0)
    assert 5 < response.delay_at(10.0) < 60
    assert abs(measured_ms - response.delay_at(10.0)) < 3.0


def test_causal_baseline_must_be_pre_stimulus():
    with pytest.raises(ValueError, match="pre-stimulus"):
        PreprocessingParams.from_config(pre_cfg(phase="causal", baseline_tmax=0.1))


def test_run_and_subject_jobs_in_causal_mode(tmp_path):
    """The per-run and per-subject jobs run with phase: causal; the QC report shows the filter."""
    import mne

    from megdecode.preprocessing.subject import OUTPUT_KEYS, preprocess_subject

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    cfg = {"phase": "causal"}
    out = _run_job(tmp_path, *_write_run(tmp_path / "bids", "01", 7), stimuli, cfg)
    epochs = mne.read_epochs(out["e"], verbose="error")
    assert epochs.get_data().shape == (20, 7, 181) and np.isfinite(epochs.get_data()).all()
    names = {"meg": "meg.npy", "report": "report.html", "info": "info.json"}
    outputs = {k: tmp_path / "pre" / names.get(k, f"{k}.tsv") for k in OUTPUT_KEYS}
    trials = preprocess_subject([out["e"]], [out["q"]], [out["p"]], "01", outputs, pre_cfg(**cfg), seed=0)
    assert len(trials) == len(load_npy(outputs["meg"], mmap=True))
    text = outputs["report"].read_text()
    assert "Causal filter: response and group delay" in text and "Group delay 1 Hz" in text


def test_epocher_filter_equals_scipy_sosfilt():
    """The in-place filter loop equals scipy.signal.sosfilt over the whole signal (state from the first
    sample's steady state), chunk after chunk."""
    from scipy import signal

    x, _ = _recording(n_channels=4)
    sos = causal_sos(CAUSAL, SFREQ)
    zi = signal.sosfilt_zi(sos)[:, None, :] * x[None, :, 0, None]
    expected, _ = signal.sosfilt(sos, x, axis=-1, zi=zi)
    window = Window.from_params(CAUSAL, SFREQ, "r")
    epocher = CausalEpocher(sos, 4, window, block=64)
    got = []
    for a in range(0, x.shape[1], 50):
        epocher.feed(x[:, a : a + 50])
        got.append(epocher.ring[:, (a + np.arange(x[:, a : a + 50].shape[1])) % epocher.capacity])
    np.testing.assert_allclose(np.concatenate(got, axis=1), expected, rtol=1e-12, atol=1e-25)
