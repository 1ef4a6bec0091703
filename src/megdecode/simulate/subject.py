"""One simulated subject: head, dipoles, forward fields, and per run a raw FIF plus the stimulus log."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np
import pandas as pd
from tqdm import tqdm

from megdecode.artifacts.sourcedata import read_ground_truth, write_ground_truth, write_stimulus_log
from megdecode.artifacts.stimuli import read_stimuli
from megdecode.io import atomic_output
from megdecode.seeds import derive_rng
from megdecode.simulate import noise as nz
from megdecode.simulate.params import SimulationParams
from megdecode.simulate.responses import evoked_sources, schedule_subject
from megdecode.simulate.sensors import (
    REFERENCE_CHANNELS,
    head_geometry,
    make_info,
)
from megdecode.simulate.sources import Dipoles, background_dipoles, fixed_gain, region_dipoles

log = logging.getLogger(__name__)
FT = 1e-15
N_DRIFT_SOURCES = 8


def subject_anatomy(params: SimulationParams, seed: int, subject: str) -> dict:
    """Subject-specific head geometry, dipoles and bad channels (deterministic from seed + label)."""
    rng = derive_rng(seed, "anatomy", subject)
    head = head_geometry(rng)
    r0 = np.asarray(head["sphere_r0"])
    dips = {
        "early": region_dipoles("occipital", params.early.n_dipoles, r0, rng),
        "late": region_dipoles("occipito-temporal", params.late.n_dipoles, r0, rng),
        "alpha": region_dipoles("alpha", 2, r0, rng),
        "background": background_dipoles(params.noise.n_brain_sources, r0, rng),
    }
    return {"head": head, "dipoles": dips}


def pick_bad_channels(names: Sequence[str], n_bad: int, rng: np.random.Generator) -> dict[str, str]:
    """Bad channels and how they are bad: the first is flat, the others noisy."""
    picks = rng.choice(len(names), n_bad, replace=False) if n_bad else []
    return {names[i]: ("flat" if k == 0 else "noisy") for k, i in enumerate(picks)}


def _meas_date(seed: int, subject: str, session: str, run_pos: int) -> datetime.datetime:
    day = int(derive_rng(seed, "date", subject, session).integers(0, 365))
    base = datetime.datetime(2020, 1, 6, 9, 0, tzinfo=datetime.UTC)
    return base + datetime.timedelta(days=day, minutes=10 * run_pos)


def simulate_run(
    params: SimulationParams,
    truth: dict,
    table: pd.DataFrame,
    trials: pd.DataFrame,
    info: mne.Info,
    gain: np.ndarray,
    bads: dict[str, str],
    rng: np.random.Generator,
) -> tuple[mne.io.RawArray, dict]:
    """Continuous recording of one run; returns the raw and per-trial ground truth."""
    sf, t, nzp = params.sfreq, params.timing, params.noise
    last = trials.onset.iloc[-1] + t.photodiode_lag_max + t.image_duration
    n_times = int(np.ceil((last + t.lead_out) * sf))
    trig = np.round(trials.onset.to_numpy() * sf).astype(int)
    lags = rng.uniform(t.photodiode_lag_min, t.photodiode_lag_max, len(trials))
    diode = trig + np.round(lags * sf).astype(int)
    evoked, var = evoked_sources(
        params, truth, table, diode, trials.image_id.tolist(), trials.trial_type.tolist(), n_times, rng
    )
    # every spatially structured signal goes through one (channels x signals) @ (signals x time) product
    alpha = nz.alpha_bursts(2, n_times, sf, nzp.alpha_freq, rng) * np.float32(nzp.alpha_nam * 1e-9)
    brain = nz.colored_noise(nzp.n_brain_sources, n_times, sf, nzp.brain_exponent, rng)
    brain *= np.float32(nzp.brain_nam * 1e-9)
    env_line = nz.line_noise(n_times, sf, nzp.line_freq, rng)
    drifts = nz.slow_drift(N_DRIFT_SOURCES, n_times, sf, rng)
    n_meg = gain.shape[0]
    sensor_rms = nzp.sensor_ft_rthz * np.sqrt(sf / 2)  # fT per sample: density x sqrt(bandwidth)
    line_gain = (1 + 0.3 * rng.standard_normal((n_meg, 1))) * nzp.line_ft * FT
    drift_gain = rng.standard_normal((n_meg, N_DRIFT_SOURCES)) * nzp.drift_ft * FT / np.sqrt(N_DRIFT_SOURCES)
    mixing = np.concatenate([gain, line_gain, drift_gain], axis=1).astype(np.float32)
    meg = mixing @ np.concatenate([evoked, alpha, brain, env_line[None], drifts])
    for i in range(0, n_meg, 32):  # white sensor noise, in blocks to bound memory
        white = rng.standard_normal((min(32, n_meg - i), n_times), dtype=np.float32)
        white *= np.float32(sensor_rms * FT)
        meg[i : i + 32] += white
    meg_names = [n for n in info["ch_names"] if n.startswith("M")]
    for name, kind in bads.items():
        i = meg_names.index(name)
        if kind == "flat":
            meg[i] = rng.standard_normal(n_times).astype(np.float32) * np.float32(0.01 * FT)
        else:
            meg[i] += rng.standard_normal(n_times).astype(np.float32) * np.float32(20 * sensor_rms * FT)
    refs = (
        np.float32(3 * nzp.line_ft * FT) * env_line[None, :]
        + np.float32(3 * nzp.drift_ft * FT) * drifts[:1]
        + rng.standard_normal((len(REFERENCE_CHANNELS), n_times), dtype=np.float32)
        * np.float32(sensor_rms * FT)
    )
    stim = np.zeros(n_times, np.float32)
    pd_chan = rng.standard_normal(n_times).astype(np.float32) * np.float32(0.002)
    width = max(1, int(round(t.trigger_duration * sf)))
    shown = int(round(t.image_duration * sf))
    for k, ttype in enumerate(trials.trial_type):
        stim[trig[k] : trig[k] + width] = params.trigger_codes[ttype]
        pd_chan[diode[k] : diode[k] + shown] += 1.0
    data = np.empty((len(info["ch_names"]), n_times))
    n_ref = len(REFERENCE_CHANNELS)
    data[:n_ref], data[n_ref : n_ref + n_meg] = refs, meg
    data[-2], data[-1] = pd_chan, stim
    del meg
    raw = mne.io.RawArray(data, info, verbose="error")
    per_trial = {
        "trigger_sample": trig.tolist(),
        "photodiode_sample": diode.tolist(),
        "photodiode_lag_s": lags.round(6).tolist(),
        "gain": var["gain"].round(6).tolist(),
    }
    if params.is_nonlinear:  # per trial: one early shift, one shift per late latency
        per_trial["latency_jitter_early_s"] = var["early"][:, 0].round(6).tolist()
        per_trial["latency_jitter_late_s"] = var["late"].round(6).tolist()
    else:  # one shift shared by every component
        per_trial["latency_jitter_s"] = var["early"][:, 0].round(6).tolist()
    return raw, per_trial


def simulate_subject(
    stimuli_table: Path | str,
    ground_truth: Path | str,
    raw_paths: Sequence[Path | str],
    log_paths: Sequence[Path | str],
    subject_truth_path: Path | str,
    cfg: dict,
    seed: int,
    subject: str,
    sessions: Sequence[str],
    runs: Sequence[str],
) -> None:
    """Write raw FIF + stimulus log for every (session, run) in that order, and the subject's ground truth."""
    params = SimulationParams.from_config(cfg)
    table = read_stimuli(stimuli_table).reset_index(drop=True)
    truth = read_ground_truth(ground_truth)
    blocks = [(ses, run) for ses in sessions for run in runs]
    if len(raw_paths) != len(blocks) or len(log_paths) != len(blocks):
        raise ValueError(f"need {len(blocks)} raw and log paths (sessions x runs), got {len(raw_paths)}")
    for (ses, run), path in zip(blocks, raw_paths, strict=True):
        if f"ses-{ses}" not in str(path) or f"run-{run}" not in str(path):
            raise ValueError(f"output {path} does not match session {ses} run {run}")
    anat = subject_anatomy(params, seed, subject)
    head, dips = anat["head"], anat["dipoles"]
    info0 = make_info(params.sfreq, head, _meas_date(seed, subject, sessions[0], 0))
    meg_names = [n for n in info0["ch_names"] if n.startswith("M")]
    bads = pick_bad_channels(meg_names, params.noise.n_bad_channels, derive_rng(seed, "bads", subject))
    order = ("early", "late", "alpha", "background")
    allpos = Dipoles(
        np.concatenate([dips[k].pos for k in order]),
        np.concatenate([dips[k].ori for k in order]),
        tuple(r for k in order for r in dips[k].region),
    )
    gain = fixed_gain(info0, allpos, np.asarray(head["sphere_r0"]), head["head_radius"])
    schedule = schedule_subject(table, sessions, runs, params, seed, subject)
    runs_truth = {}
    for pos, ((ses, run), raw_path, log_path) in enumerate(
        tqdm(list(zip(blocks, raw_paths, log_paths, strict=True)), desc=f"sub-{subject}")
    ):
        rng = derive_rng(seed, "run", subject, ses, run)
        info = make_info(params.sfreq, head, _meas_date(seed, subject, ses, pos))
        trials = schedule[(ses, run)]
        raw, per_trial = simulate_run(params, truth, table, trials, info, gain, bads, rng)
        with atomic_output(raw_path) as tmp:
            raw.save(tmp, fmt="single", overwrite=True, verbose="error")
        write_stimulus_log(trials, log_path)
        runs_truth[f"ses-{ses}_run-{run}"] = per_trial
        log.info("sub-%s ses-%s run-%s: %d trials, %.1f s", subject, ses, run, len(trials), raw.times[-1])
    world = (
        {"world": "nonlinear", "nonlinear": dataclasses.asdict(params.nonlinear)}
        if params.is_nonlinear
        else {}
    )
    write_ground_truth(
        {
            **world,
            "subject": subject,
            "seed": seed,
            "sfreq": params.sfreq,
            "head": head,
            "dipoles": {k: v.to_json() for k, v in dips.items()},
            "dipole_order_in_gain": list(order),
            "bad_channels": bads,
            "runs": runs_truth,
            "log_onset_reference": "seconds from the first sample of the raw recording",
        },
        subject_truth_path,
    )
