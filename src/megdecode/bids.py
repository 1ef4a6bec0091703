"""Lab sourcedata -> BIDS (ds004212 layout) with mne-bids, without races between parallel jobs.

One job per run (:func:`convert_run`) finds the stimulus triggers on ``UPPT001``, matches them row by
row to the stimulus program's log, corrects each event sample with the photodiode and writes the run's
own files (``_meg.fif``, ``_meg.json``, ``_channels.tsv``, ``_events.tsv``). mne-bids writes into a
private temporary root, so the dataset-level files it also touches never race; one dataset job
(:func:`write_dataset_files`) then writes ``dataset_description.json``, ``participants.tsv/json``,
``README``, the task's ``events.json`` and, per session, ``scans.tsv`` and ``coordsystem.json``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd
from mne_bids import make_dataset_description, update_sidecar_json, write_raw_bids

from megdecode import __version__ as MEGDECODE_VERSION
from megdecode.artifacts.paths import bids_dataset_files, bids_run_files, bids_run_path, bids_session_files
from megdecode.artifacts.sourcedata import read_ground_truth, read_stimulus_log
from megdecode.config import dataclass_from_section
from megdecode.io import atomic_output, write_json, write_tsv
from megdecode.recording import read_raw_checked

log = logging.getLogger(__name__)

EVENTS_COLUMNS = ("onset", "duration", "trial_type", "value", "sample", "image_id", "concept")
#: keys of the ``bids`` config section that only the dataset-level job reads
DATASET_KEYS = ("dataset_name", "authors", "license")
#: Default fiducials (MNE head frame, metres) written when the recording has none.
DEFAULT_FIDUCIALS = {"nasion": (0.0, 0.1, 0.0), "lpa": (-0.075, 0.0, 0.0), "rpa": (0.075, 0.0, 0.0)}


class TriggerLogMismatch(ValueError):
    """Triggers on the stimulus channel disagree with the stimulus log (count, order or code)."""


@dataclass(frozen=True)
class BidsParams:
    """Settings of one run's conversion (config section ``bids`` minus :data:`DATASET_KEYS`)."""

    stim_channel: str
    photodiode_channel: str | None
    photodiode_max_lag_s: float
    photodiode_threshold: float
    trigger_codes: Mapping[str, int] | None
    max_log_drift_s: float | None
    stimulus_duration_s: float
    power_line_hz: float
    manufacturer: str

    def with_codes_from(self, ground_truth_json: Path | str | None) -> BidsParams:
        """Fill in ``trigger_codes`` from the simulator's ground_truth.json if the config has none."""
        if self.trigger_codes is not None or ground_truth_json is None:
            return self
        codes = read_ground_truth(ground_truth_json).get("trigger_codes")
        if not isinstance(codes, dict) or not codes:
            raise ValueError(
                f"{ground_truth_json} has no 'trigger_codes' mapping; set bids.trigger_codes in the config"
            )
        return replace(self, trigger_codes={str(k): int(v) for k, v in codes.items()})

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> BidsParams:
        """From the validated ``bids`` slice (the dataset-level keys, if given, are left out)."""
        return dataclass_from_section(cls, {k: v for k, v in cfg.items() if k not in DATASET_KEYS}, "bids")


@dataclass(frozen=True)
class DatasetDescription:
    """Dataset-level settings of the bids section (written once, by the dataset job)."""

    dataset_name: str
    authors: tuple[str, ...]
    license: str

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DatasetDescription:
        values = {k: tuple(cfg[k]) if k == "authors" else cfg[k] for k in DATASET_KEYS}
        return dataclass_from_section(cls, values, "bids")


# --- triggers, photodiode, log ---------------------------------------------------------------------


def find_triggers(raw: mne.io.BaseRaw, stim_channel: str) -> np.ndarray:
    """Trigger onsets on ``stim_channel`` as an (n, 2) int array: sample (from the first sample), code."""
    if stim_channel not in raw.ch_names:
        raise ValueError(f"trigger channel '{stim_channel}' not in the recording; set bids.stim_channel")
    events = mne.find_events(
        raw,
        stim_channel=stim_channel,
        shortest_event=1,
        consecutive=True,
        initial_event=True,
        verbose="error",
    )
    out = np.column_stack([events[:, 0] - raw.first_samp, events[:, 2]]).astype(np.int64)
    return out.reshape(-1, 2)


def match_triggers_to_log(
    codes: np.ndarray, trial_types: Sequence[str], trigger_codes: Mapping[str, int] | None, run_name: str
) -> dict[str, int]:
    """Check that trigger ``codes`` equal the log's trial types row by row; return trial_type -> code.

    With ``trigger_codes`` None the mapping is inferred from the first occurrences and must stay
    one-to-one. Raises :class:`TriggerLogMismatch` naming the run and the first mismatching row.
    """
    trial_types = [str(t) for t in trial_types]
    mapping: dict[str, int] = dict(trigger_codes) if trigger_codes is not None else {}
    unknown = sorted(set(trial_types) - set(mapping)) if trigger_codes is not None else []
    if unknown:
        raise TriggerLogMismatch(
            f"{run_name}: log trial types {unknown} have no trigger code; add them to bids.trigger_codes "
            f"(now {dict(mapping)})"
        )
    n = min(len(codes), len(trial_types))
    for row in range(n):
        ttype, code = trial_types[row], int(codes[row])
        if trigger_codes is None and ttype not in mapping and code not in mapping.values():
            mapping[ttype] = code
        if mapping.get(ttype) != code:
            raise TriggerLogMismatch(
                f"{run_name}: trigger/log mismatch at log row {row} (0-based, header excluded): "
                f"log trial_type '{ttype}' expects code {mapping.get(ttype, '<unassigned>')}, "
                f"trigger channel has code {code}; codes in use {mapping}"
            )
    if len(codes) != len(trial_types):
        raise TriggerLogMismatch(
            f"{run_name}: {len(codes)} triggers but {len(trial_types)} log rows; first mismatching row is "
            f"{n} (0-based) — a trigger or a log row is missing there"
        )
    return mapping


def check_log_timing(
    trigger_samples: np.ndarray, log_onsets: np.ndarray, sfreq: float, tolerance_s: float, run_name: str
) -> float:
    """Compare trigger times with the log's onsets (both relative to their first event); return max drift."""
    trig = (trigger_samples - trigger_samples[0]) / sfreq
    logged = np.asarray(log_onsets, dtype=float) - float(log_onsets[0])
    drift = np.abs(trig - logged)
    worst = int(np.argmax(drift))
    if drift[worst] > tolerance_s:
        raise TriggerLogMismatch(
            f"{run_name}: trigger at row {worst} is {drift[worst] * 1e3:.1f} ms away from the log's onset "
            f"(relative to the first event; tolerance {tolerance_s * 1e3:.0f} ms): log and recording "
            "disagree in timing; check the files or raise bids.max_log_drift_s"
        )
    return float(drift.max())


def photodiode_onsets(
    signal: np.ndarray,
    trigger_samples: np.ndarray,
    sfreq: float,
    max_lag_s: float,
    threshold: float,
    run_name: str,
) -> np.ndarray:
    """First photodiode edge at or after each trigger, within ``max_lag_s``; returns sample indices.

    The two light levels are the 5th/95th percentiles of the channel; the edge is where it crosses
    ``low + threshold * (high - low)`` away from its resting level (polarity found from the median).
    """
    signal = np.asarray(signal, dtype=float)
    low, high = np.percentile(signal, [5, 95])
    if not high - low > 0:
        raise ValueError(f"{run_name}: photodiode channel is flat; set bids.photodiode_channel: null")
    level = low + threshold * (high - low)
    resting_low = abs(np.median(signal) - low) <= abs(np.median(signal) - high)
    lit = signal > level if resting_low else signal < level
    edges = np.flatnonzero(lit[1:] & ~lit[:-1]) + 1
    max_lag = int(round(max_lag_s * sfreq))
    out = np.empty(len(trigger_samples), dtype=np.int64)
    for row, trig in enumerate(trigger_samples):
        k = np.searchsorted(edges, trig)
        if k == len(edges) or edges[k] - trig > max_lag:
            raise ValueError(
                f"{run_name}: no photodiode onset within {max_lag_s * 1e3:.0f} ms after the trigger of "
                f"log row {row} (sample {trig}); raise bids.photodiode_max_lag_s or set "
                "bids.photodiode_channel: null"
            )
        out[row] = edges[k]
    return out


def events_table(
    log_table: pd.DataFrame, samples: np.ndarray, sfreq: float, duration_s: float
) -> pd.DataFrame:
    """The BIDS events table: ``onset duration trial_type value sample image_id concept``."""
    value = pd.to_numeric(log_table["value"], errors="coerce").round().astype("Int64")
    return pd.DataFrame(
        {
            "onset": np.asarray(samples, dtype=float) / sfreq,
            "duration": float(duration_s),
            "trial_type": log_table["trial_type"].astype(str).to_numpy(),
            "value": value.array,
            "sample": np.asarray(samples, dtype=np.int64),
            "image_id": log_table["image_id"].to_numpy(),
            "concept": log_table["concept"].to_numpy(),
        },
        columns=list(EVENTS_COLUMNS),
    )


def find_events(
    raw: mne.io.BaseRaw, log_table: pd.DataFrame, params: BidsParams, run_name: str
) -> pd.DataFrame:
    """Triggers matched to the log and photodiode-corrected, as a BIDS events table."""
    sfreq = float(raw.info["sfreq"])
    triggers = find_triggers(raw, params.stim_channel)
    mapping = match_triggers_to_log(triggers[:, 1], log_table["trial_type"], params.trigger_codes, run_name)
    log.info("%s: %d triggers match the log (codes %s)", run_name, len(triggers), mapping)
    if params.max_log_drift_s is not None:
        drift = check_log_timing(
            triggers[:, 0], log_table["onset"].to_numpy(), sfreq, params.max_log_drift_s, run_name
        )
        log.info("%s: max trigger-vs-log drift %.2f ms", run_name, drift * 1e3)
    samples = triggers[:, 0]
    if params.photodiode_channel is not None:
        if params.photodiode_channel not in raw.ch_names:
            raise ValueError(
                f"{run_name}: photodiode channel '{params.photodiode_channel}' not in the recording; "
                "set bids.photodiode_channel (null to keep trigger times)"
            )
        signal = raw.get_data(picks=[params.photodiode_channel])[0]
        onsets = photodiode_onsets(
            signal, samples, sfreq, params.photodiode_max_lag_s, params.photodiode_threshold, run_name
        )
        lag_ms = (onsets - samples) / sfreq * 1e3
        log.info(
            "%s: photodiode lag median %.1f ms (min %.1f, max %.1f)",
            run_name,
            np.median(lag_ms),
            lag_ms.min(),
            lag_ms.max(),
        )
        samples = onsets
    return events_table(log_table, samples, sfreq, params.stimulus_duration_s)


# --- per-run conversion ----------------------------------------------------------------------------


def _ensure_fiducials(raw: mne.io.BaseRaw, run_name: str) -> None:
    montage = raw.get_montage()
    pos = montage.get_positions() if montage is not None else {}
    if all(pos.get(k) is not None for k in ("nasion", "lpa", "rpa")):
        return
    log.warning("%s: recording has no fiducials; writing default head-frame fiducials", run_name)
    dig = mne.channels.make_dig_montage(**DEFAULT_FIDUCIALS, coord_frame="head").dig
    with raw.info._unlock():
        raw.info["dig"] = list(raw.info["dig"] or []) + dig


def convert_run(
    raw_fif: Path | str,
    log_tsv: Path | str,
    bids_root: Path | str,
    subject: str,
    session: str,
    run: str,
    task: str,
    params: BidsParams,
    ground_truth_json: Path | str | None = None,
) -> dict[str, Path]:
    """Convert one sourcedata run to BIDS; write only this run's files (``artifacts.paths.BIDS_RUN_FILES``).

    Trigger codes: ``params.trigger_codes``, else those of ``ground_truth_json`` (simulated study),
    else inferred from the run (first occurrence of each trial type, then checked one-to-one).

    mne-bids writes into a private temporary root beside ``bids_root``; the run's files are then
    moved into place one by one (atomic renames), so concurrent runs never touch shared files.
    """
    bids_root = Path(bids_root)
    run_name = f"sub-{subject}_ses-{session}_task-{task}_run-{run}"
    remove_stale_staging(bids_root, run_name)
    if not Path(raw_fif).is_file():
        raise FileNotFoundError(f"{raw_fif}: raw recording of {run_name} not found; run the simulate rule")
    params = params.with_codes_from(ground_truth_json)
    log_table = read_stimulus_log(log_tsv)
    # the simulated study's sourcedata (it comes with ground_truth.json) is the simulate_subject job's output
    raw = read_raw_checked(raw_fif, written_by="simulate_subject" if ground_truth_json is not None else None)
    try:
        events = find_events(raw, log_table, params, run_name)
    except ValueError as err:  # TriggerLogMismatch too: name the files and keep the type
        raise type(err)(f"{err} [files: {raw_fif}, {log_tsv}]") from None
    if len(raw.annotations):
        log.warning("%s: dropping %d annotations of the source file", run_name, len(raw.annotations))
    raw.set_annotations(None)
    if raw.info["line_freq"] is None:
        with raw.info._unlock():
            raw.info["line_freq"] = params.power_line_hz
    _ensure_fiducials(raw, run_name)

    final = _run_files(bids_root, subject, session, run, task)
    bids_root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".tmp-bids-{run_name}-", dir=bids_root.parent) as tmp:
        tmp_path = bids_run_path(tmp, subject, session, run, task).update(check=True)  # labels checked
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No events found or provided")
            write_raw_bids(raw, tmp_path, format="FIF", allow_preload=True, overwrite=True, verbose="error")
        staged = _run_files(tmp, subject, session, run, task)
        sidecar = tmp_path.copy().update(suffix="meg", extension=".json")
        description = (
            f"Object images shown for {params.stimulus_duration_s:g} s each, with catch trials "
            "(THINGS-MEG-like rapid serial presentation)."
        )
        update_sidecar_json(sidecar, {"Manufacturer": params.manufacturer, "TaskDescription": description})
        for key in ("sidecar", "channels"):
            _move(staged[key], final[key])
        write_tsv(events, final["events"])
        _move(staged["raw"], final["raw"])
    log.info("%s: wrote %s", run_name, ", ".join(str(p) for p in final.values()))
    return final


def remove_stale_staging(bids_root: Path, run_name: str) -> None:
    """Delete this run's staging folders left by a killed job (``.tmp-bids-<run>-*`` beside ``bids_root``).

    Only this run's job writes them, and Snakemake never runs one job twice at once, so any found at the
    job's start are leftovers.
    """
    import shutil

    parent = bids_root.parent
    if not parent.is_dir():
        return
    for stale in parent.glob(f".tmp-bids-{run_name}-*"):
        log.warning("%s: removing staging folder %s left by an interrupted job", run_name, stale)
        shutil.rmtree(stale, ignore_errors=True)


def _run_files(bids_root: Path | str, subject: str, session: str, run: str, task: str) -> dict[str, Path]:
    return {k: Path(v) for k, v in bids_run_files(bids_root, subject, session, run, task).items()}


def _move(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise FileNotFoundError(f"mne-bids did not write {src.name}; cannot place {dst}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


# --- dataset-level files ---------------------------------------------------------------------------


def coordsystem(raw: mne.io.BaseRaw) -> dict[str, Any]:
    """coordsystem.json content of a FIF recording: MNE head frame (ElektaNeuromag convention), metres."""
    montage = raw.get_montage()
    pos = montage.get_positions() if montage is not None else {}
    landmarks = {
        name: [round(float(v), 6) for v in pos[key]]
        for name, key in (("NAS", "nasion"), ("LPA", "lpa"), ("RPA", "rpa"))
        if pos.get(key) is not None
    }
    frame = "ElektaNeuromag"
    return {
        "MEGCoordinateSystem": frame,
        "MEGCoordinateUnits": "m",
        "MEGCoordinateSystemDescription": "RAS orientation and the origin between the ears",
        "HeadCoilCoordinates": landmarks,
        "HeadCoilCoordinateSystem": frame,
        "HeadCoilCoordinateUnits": "m",
        "AnatomicalLandmarkCoordinates": landmarks,
        "AnatomicalLandmarkCoordinateSystem": frame,
        "AnatomicalLandmarkCoordinateUnits": "m",
    }


def _acq_time(raw: mne.io.BaseRaw) -> str:
    meas_date = raw.info["meas_date"]
    return "n/a" if meas_date is None else meas_date.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


EVENTS_JSON = {
    "onset": {
        "Description": "Image onset (photodiode-corrected), from the start of the recording.",
        "Units": "s",
    },
    "duration": {"Description": "Time the image stayed on screen.", "Units": "s"},
    "trial_type": {
        "Description": "Trial role, as in THINGS-MEG.",
        "Levels": {
            "exp": "image of a training or test concept, shown once",
            "test": "test image, repeated once per session",
            "catch": "catch trial (oddball), excluded from decoding",
        },
    },
    "value": {"Description": "Image number (as THINGS-MEG's value column); n/a when the log has none."},
    "sample": {"Description": "Sample index of the onset, from the first sample of the recording (0-based)."},
    "image_id": {"Description": "Stimulus identifier, a row of the study's stimuli table."},
    "concept": {"Description": "Concept (category) of the image."},
}


def write_dataset_files(
    bids_root: Path | str,
    runs: Sequence[tuple[str, str, str]],
    task: str,
    description: DatasetDescription,
) -> dict[str, Path]:
    """Write the dataset-level and per-session files once all ``runs`` (subject, session, run) exist.

    Per session, scans.tsv lists its runs and coordsystem.json takes the fiducials of the session's
    first run (a warning when later runs differ by more than 1 mm).
    """
    bids_root = Path(bids_root)
    out = {k: Path(v) for k, v in bids_dataset_files(bids_root, task).items()}
    by_session: dict[tuple[str, str], list[str]] = {}
    for subject, session, run in runs:
        by_session.setdefault((subject, session), []).append(run)
    for (subject, session), session_runs in sorted(by_session.items()):
        rows, coords = [], None
        for run in sorted(session_runs):
            raw_path = _run_files(bids_root, subject, session, run, task)["raw"]
            if not raw_path.is_file():
                raise FileNotFoundError(f"{raw_path}: run not converted yet; run the bids_run rule first")
            raw = read_raw_checked(raw_path)
            rows.append({"filename": f"meg/{raw_path.name}", "acq_time": _acq_time(raw)})
            this = coordsystem(raw)
            if coords is None:
                coords = this
            elif _fiducial_distance(coords, this) > 1e-3:
                log.warning(
                    "sub-%s ses-%s run-%s: fiducials differ from the session's first run",
                    subject,
                    session,
                    run,
                )
        paths = {k: Path(v) for k, v in bids_session_files(bids_root, subject, session).items()}
        write_tsv(pd.DataFrame(rows, columns=["filename", "acq_time"]), paths["scans"])
        write_json(coords, paths["coordsystem"])
        out[f"scans_{subject}_{session}"] = paths["scans"]
        out[f"coordsystem_{subject}_{session}"] = paths["coordsystem"]

    subjects = sorted({s for s, _, _ in runs})
    write_tsv(pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects]}), out["participants"])
    write_json({"participant_id": {"Description": "Unique participant identifier"}}, out["participants_json"])
    write_json(EVENTS_JSON, out["events_json"])
    with atomic_output(out["readme"]) as tmp:
        tmp.write_text(_readme(description, subjects, len(by_session), len(runs)))
    with tempfile.TemporaryDirectory(prefix=".tmp-bids-description-", dir=bids_root.parent) as tmp:
        make_dataset_description(
            path=tmp,
            name=description.dataset_name,
            dataset_type="raw",
            authors=list(description.authors),
            data_license=description.license,
            generated_by=[{"Name": "megdecode", "Version": MEGDECODE_VERSION}],
            overwrite=True,
            verbose="error",
        )
        _move(Path(tmp) / "dataset_description.json", out["description"])
    log.info("wrote dataset files for %d runs of %d subjects under %s", len(runs), len(subjects), bids_root)
    return out


def _fiducial_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    la, lb = a["HeadCoilCoordinates"], b["HeadCoilCoordinates"]
    keys = sorted(set(la) & set(lb))
    if not keys:
        return 0.0
    return max(float(np.linalg.norm(np.subtract(la[k], lb[k]))) for k in keys)


def _readme(description: DatasetDescription, subjects: Sequence[str], n_sessions: int, n_runs: int) -> str:
    return (
        f"# {description.dataset_name}\n\n"
        "MEG recordings converted to BIDS by the megdecode workflow (mne-bids), in the layout of\n"
        "THINGS-MEG (OpenNeuro ds004212). Event onsets are photodiode-corrected; events.tsv `value`\n"
        "is the image number and `image_id`/`concept` name the stimulus.\n\n"
        f"{len(subjects)} participants, {n_sessions} sessions, {n_runs} runs.\n"
    )
