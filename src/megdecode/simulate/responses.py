"""Trial schedules and evoked source activity (early: image statistics; late: concept attributes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from megdecode.seeds import derive_rng
from megdecode.simulate.params import ComponentParams, SimulationParams
from megdecode.simulate.stimuli import early_code, late_code


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


def gaussian_waves(
    comp: ComponentParams, shift: float | np.ndarray, n: int, sfreq: float, start: float = 0.0
) -> np.ndarray:
    """(n_latencies, n) Gaussian bumps at each latency + ``shift`` s after image onset, sampled from ``start``
    s (relative to onset; 0: the window starts at onset); ``shift``: one value for all latencies or one per
    latency."""
    t = start + np.arange(n) / sfreq
    lat = np.asarray(comp.latencies)[:, None] + np.reshape(shift, (-1, 1))
    return np.exp(-0.5 * ((t[None, :] - lat) / comp.width) ** 2)


def trial_amplitudes(
    params: SimulationParams,
    truth: dict,
    image_id: str,
    trial_type: str,
    attrs: dict[str, str] | None,
    concept: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dipole moments (Am) per latency: early (n_early, n_lat_early), late (n_late, n_lat_late).

    The world is the one of ``truth`` (study-level ground_truth.json); ``concept`` is needed for conjunctive
    codes (nonlinear world)."""
    vec = late_code(truth, concept, attrs) if trial_type != "catch" and attrs is not None else None
    return code_amplitudes(params, truth, early_code(truth, image_id), vec)


def code_amplitudes(
    params: SimulationParams, truth: dict, early: np.ndarray, late: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Dipole moments (Am) of :func:`trial_amplitudes` from the codes themselves: the early code (one entry
    per low-level feature) and the late code (``late`` None: no late response, as for catch trials). Affine
    in the early code (the evoked part is image independent), linear in the late one."""
    e, lt = params.early, params.late
    w = np.asarray(truth["components"]["early"]["weights"])
    a_early = params.evoked_nam + e.amplitude_nam * (w @ early).reshape(e.n_dipoles, len(e.latencies))
    a_late = np.zeros((lt.n_dipoles, len(lt.latencies)))
    if late is not None:
        a_late = lt.amplitude_nam * late.reshape(lt.n_dipoles, len(lt.latencies))
    return a_early * 1e-9, a_late * 1e-9


def trial_variables(
    params: SimulationParams, n_trials: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-trial generating variables: latency shifts (s) of the early and late peaks, (n_trials, n_latencies)
    each, and gains (n_trials,). Linear world: one shift per trial shared by every peak; nonlinear world: one
    early shift (``early_jitter_sd``) and an independent shift per late latency (``late_jitter_sd``)."""
    n_e, n_l = len(params.early.latencies), len(params.late.latencies)
    if not params.is_nonlinear:  # the linear world's draws, in their original order
        jitters = rng.normal(0, params.latency_jitter_sd, n_trials)
        gains = np.exp(rng.normal(0, params.gain_sd, n_trials))
        return {
            "early": np.repeat(jitters[:, None], n_e, axis=1),
            "late": np.repeat(jitters[:, None], n_l, axis=1),
            "gain": gains,
        }
    nl = params.nonlinear
    early = np.repeat(rng.normal(0, nl.early_jitter_sd, (n_trials, 1)), n_e, axis=1)
    late = rng.normal(0, nl.late_jitter_sd, (n_trials, n_l))
    return {"early": early, "late": late, "gain": np.exp(rng.normal(0, nl.gain_sd, n_trials))}


def evoked_sources(
    params: SimulationParams,
    truth: dict,
    table: pd.DataFrame,
    image_onsets: np.ndarray,
    image_ids: Sequence[str],
    trial_types: Sequence[str],
    n_times: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Source time courses (n_early + n_late, n_times) float32 for trials whose images appear at
    ``image_onsets`` (samples, photodiode time); returns (sources, per-trial variables of
    :func:`trial_variables`)."""
    if truth.get("world", "linear") != params.world:
        raise ValueError(
            f"ground_truth.json was made for the {truth.get('world', 'linear')} world but the config asks "
            f"for simulation.responses.world '{params.world}'; rerun simulate_stimuli"
        )
    sf = params.sfreq
    early, late = params.early, params.late
    n_e, n_l = early.n_dipoles, late.n_dipoles
    # the window covers the largest shift the world draws (5 SD), so no late peak is cut at its tail
    max_shift = 5 * (
        max(params.nonlinear.early_jitter_sd, params.nonlinear.late_jitter_sd) if params.is_nonlinear else 0
    )
    win = int(
        np.ceil((max(*early.latencies, *late.latencies) + 5 * max(early.width, late.width) + max_shift) * sf)
    )
    src = np.zeros((n_e + n_l, n_times), np.float32)
    by_id = table.set_index("image_id")
    var = trial_variables(params, len(image_ids), rng)
    for k, (onset, img, ttype) in enumerate(zip(image_onsets, image_ids, trial_types, strict=True)):
        row = by_id.loc[img]
        attrs = None if ttype == "catch" else {a: row[a] for a in ("shape", "colour", "texture")}
        a_e, a_l = trial_amplitudes(params, truth, img, ttype, attrs, row["concept"])
        stop = min(onset + win, n_times)
        n = stop - onset
        if n <= 0:
            continue
        src[:n_e, onset:stop] += var["gain"][k] * (a_e @ gaussian_waves(early, var["early"][k], n, sf))
        src[n_e:, onset:stop] += var["gain"][k] * (a_l @ gaussian_waves(late, var["late"][k], n, sf))
    return src, var
