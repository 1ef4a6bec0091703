"""Trial schedules and evoked source activity (early: image statistics; late: concept attributes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from megdecode.seeds import derive_rng
from megdecode.simulate.params import ComponentParams, SimulationParams

LOG_COLUMNS = ["onset", "trial_type", "image_id", "file", "concept", "exemplar", "value", "test_image_nr"]


def schedule_subject(
    table: pd.DataFrame,
    sessions: Sequence[str],
    runs: Sequence[str],
    params: SimulationParams,
    seed: int,
    subject: str,
) -> dict[tuple[str, str], pd.DataFrame]:
    """Assign trials to runs like THINGS-MEG: every exp image once per subject, every test image once per
    session, ``catch_per_run`` catch trials per run; shuffled order, onsets with a jittered gap."""
    rng = derive_rng(seed, "schedule", subject)
    exp = table[table.role == "exp"]
    test = table[table.role == "test"].reset_index(drop=True)
    catch = table[table.role == "catch"]
    test_nr = {img: i + 1 for i, img in enumerate(test.image_id)}
    blocks = [(ses, run) for ses in sessions for run in runs]
    exp_parts = np.array_split(rng.permutation(len(exp)), len(blocks))
    test_parts: dict[tuple[str, str], np.ndarray] = {}
    for ses in sessions:
        for run, part in zip(runs, np.array_split(rng.permutation(len(test)), len(runs)), strict=True):
            test_parts[(ses, run)] = part
    t = params.timing
    out = {}
    for block, exp_idx in zip(blocks, exp_parts, strict=True):
        rows = [exp.iloc[exp_idx], test.iloc[test_parts[block]]]
        if len(catch) and params.catch_per_run:
            rows.append(catch.iloc[rng.choice(len(catch), params.catch_per_run, replace=True)])
        trials = pd.concat(rows, ignore_index=True)
        trials = trials.iloc[rng.permutation(len(trials))].reset_index(drop=True)
        gaps = t.image_duration + t.gap_mean + rng.uniform(-t.gap_jitter, t.gap_jitter, len(trials))
        onsets = t.lead_in + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        log = pd.DataFrame(
            {
                "onset": onsets.round(6),
                "trial_type": trials.role.to_numpy(),
                "image_id": trials.image_id.to_numpy(),
                "file": trials.file.to_numpy(),
                "concept": trials.concept.to_numpy(),
                "exemplar": trials.exemplar.to_numpy(),
                "value": trials.value.to_numpy(),
                "test_image_nr": [test_nr.get(i) for i in trials.image_id],
            }
        )
        log["test_image_nr"] = log["test_image_nr"].astype("Int64")
        out[block] = log
    return out


def gaussian_waves(comp: ComponentParams, shift: float, n: int, sfreq: float) -> np.ndarray:
    """(n_latencies, n) Gaussian bumps at each latency + ``shift`` seconds after the window start."""
    t = np.arange(n) / sfreq
    lat = np.asarray(comp.latencies)[:, None] + shift
    return np.exp(-0.5 * ((t[None, :] - lat) / comp.width) ** 2)


def trial_amplitudes(
    params: SimulationParams, truth: dict, image_id: str, trial_type: str, attrs: dict[str, str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Dipole moments (Am) per latency: early (n_early, n_lat_early), late (n_late, n_lat_late)."""
    early, late = params.early, params.late
    comps = truth["components"]
    feats = np.asarray(truth["image_features"][image_id])
    z = (feats - np.asarray(truth["feature_mean"])) / np.asarray(truth["feature_std"])
    w = np.asarray(comps["early"]["weights"])
    a_early = params.evoked_nam + early.amplitude_nam * (w @ z).reshape(early.n_dipoles, len(early.latencies))
    a_late = np.zeros((late.n_dipoles, len(late.latencies)))
    if trial_type != "catch" and attrs is not None:
        codes = comps["late"]["attribute_codes"]
        vec = sum(np.asarray(codes[a][v]) for a, v in attrs.items())
        a_late = late.amplitude_nam * vec.reshape(late.n_dipoles, len(late.latencies))
    return a_early * 1e-9, a_late * 1e-9


def evoked_sources(
    params: SimulationParams,
    truth: dict,
    table: pd.DataFrame,
    image_onsets: np.ndarray,
    image_ids: Sequence[str],
    trial_types: Sequence[str],
    n_times: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source time courses (n_early + n_late, n_times) float32 for trials whose images appear at
    ``image_onsets`` (samples, photodiode time); returns (sources, latency jitters s, gains)."""
    sf = params.sfreq
    early, late = params.early, params.late
    n_e, n_l = early.n_dipoles, late.n_dipoles
    win = int(np.ceil((max(*early.latencies, *late.latencies) + 5 * max(early.width, late.width)) * sf))
    src = np.zeros((n_e + n_l, n_times), np.float32)
    by_id = table.set_index("image_id")
    jitters = rng.normal(0, params.latency_jitter_sd, len(image_ids))
    gains = np.exp(rng.normal(0, params.gain_sd, len(image_ids)))
    for k, (onset, img, ttype) in enumerate(zip(image_onsets, image_ids, trial_types, strict=True)):
        row = by_id.loc[img]
        attrs = None if ttype == "catch" else {a: row[a] for a in ("shape", "colour", "texture")}
        a_e, a_l = trial_amplitudes(params, truth, img, ttype, attrs)
        stop = min(onset + win, n_times)
        n = stop - onset
        if n <= 0:
            continue
        src[:n_e, onset:stop] += gains[k] * (a_e @ gaussian_waves(early, jitters[k], n, sf))
        src[n_e:, onset:stop] += gains[k] * (a_l @ gaussian_waves(late, jitters[k], n, sf))
    return src, jitters, gains
