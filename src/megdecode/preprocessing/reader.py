"""Read one BIDS MEG run: the recording's header, its sidecars and its events.

Real-data quirks handled here (THINGS-MEG, ds004212): channels.tsv types the MEG gradiometers ``OTHER``,
so MEG channels are picked by the sensor kind stored in the recording's own header; some runs lack
sidecars (we fall back to the header and say so); macOS AppleDouble ``._*`` files are ignored; events.tsv
writes numbers as floats and catch rows as ``N/A``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode.io import EmptyTableError, read_tsv

log = logging.getLogger(__name__)

SIDECAR_SUFFIXES = {
    "events": "_events.tsv",
    "channels": "_channels.tsv",
    "meg_json": "_meg.json",
    "coordsystem": "_coordsystem.json",
}


class BadRunError(ValueError):
    """A run that cannot be preprocessed; the message names the run and the problem."""


def run_stem(raw_path: Path | str) -> str:
    """BIDS stem of a raw file: ``sub-01_ses-01_task-main_run-01`` from ``..._meg.fif`` / ``..._meg.ds``."""
    name = Path(raw_path).name
    for ext in (".fif", ".ds"):
        if name.endswith("_meg" + ext):
            return name[: -len("_meg" + ext)]
    raise BadRunError(
        f"{raw_path}: not a BIDS MEG recording name (expected '<stem>_meg.fif' or '<stem>_meg.ds')"
    )


def find_run_sidecars(raw_path: Path | str) -> dict[str, Path | None]:
    """The run's sidecar files beside the recording (None when absent); AppleDouble ``._*`` files are skipped.

    ``coordsystem.json`` may be per run or per session (without task/run entities).
    """
    raw_path = Path(raw_path)
    stem = run_stem(raw_path)
    folder = raw_path.parent
    names = {p.name for p in folder.iterdir() if not p.name.startswith("._")} if folder.is_dir() else set()
    found: dict[str, Path | None] = {}
    for key, suffix in SIDECAR_SUFFIXES.items():
        candidates = [stem + suffix]
        if key == "coordsystem":
            candidates.append(stem.split("_task-")[0] + suffix)
        found[key] = next((folder / c for c in candidates if c in names), None)
    return found


def read_channels_tsv(path: Path | str) -> pd.DataFrame:
    """channels.tsv as a table (``name``, ``type``, ``status``...); its types are never used to pick."""
    table = read_tsv(path, dtype={"name": str, "type": str})
    if "name" not in table.columns:
        raise BadRunError(f"{path}: channels.tsv has no 'name' column")
    return table


def read_events(
    path: Path | str,
    sfreq: float,
    run: str,
    trial_types: tuple[str, ...],
    warnings: list[str] | None = None,
) -> pd.DataFrame:
    """events.tsv -> ``onset trial_type value sample`` (+ ``image_id concept`` if present), kept types only.

    ``sample`` (photodiode-corrected in THINGS-MEG) is used when present, else ``round(onset * sfreq)``.
    ``value`` becomes a nullable integer (catch rows: missing). A negative onset beside a usable ``sample`` is
    logged and noted in ``warnings``: the file contradicts itself.
    """
    path = Path(path)
    try:
        events = read_tsv(path, dtype={"trial_type": str, "image_id": str, "concept": str})
    except FileNotFoundError as err:
        raise BadRunError(f"run {run}: events file missing: {path}") from err
    except EmptyTableError as err:
        raise BadRunError(f"run {run}: events file {err}") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise BadRunError(f"run {run}: events file {path} is not a readable TSV ({err})") from err
    missing = [c for c in ("onset", "trial_type", "value") if c not in events.columns]
    if missing:
        raise BadRunError(
            f"run {run}: {path} lacks column(s) {missing}; expected onset, trial_type, value, sample"
        )
    events = events[events["trial_type"].isin(trial_types)]
    if events.empty:
        raise BadRunError(f"run {run}: {path} has no events of trial types {list(trial_types)}")
    if "sample" in events.columns and events["sample"].notna().all():
        sample = events["sample"].to_numpy(dtype=float)
        negative = events.index[pd.to_numeric(events["onset"], errors="coerce") < 0]
        if len(negative):
            note = (
                f"{len(negative)} event(s) in {path} have a negative onset (first: row {negative[0] + 1}, "
                f"onset {events.loc[negative[0], 'onset']} s) although their 'sample' is valid"
            )
            log.warning("run %s: %s; their 'sample' column is used: check how the file was made", run, note)
            if warnings is not None:
                warnings.append(note)
    else:
        sample = events["onset"].to_numpy(dtype=float) * sfreq
    if not np.all(np.isfinite(sample)):
        raise BadRunError(f"run {run}: {path} has events without onset/sample")
    events = events.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "onset": events["onset"].astype(float),
            "trial_type": events["trial_type"].astype(str),
            "value": pd.array(np.round(events["value"].to_numpy(dtype=float)), dtype="Int64"),
            "sample": np.round(sample).astype(np.int64),
        }
    )
    for col in ("image_id", "concept"):
        if col in events.columns:
            out[col] = events[col]
    return out


def attach_stimuli(events: pd.DataFrame, stimuli: pd.DataFrame, run: str) -> pd.DataFrame:
    """Add ``image_id``, ``concept``, ``concept_split`` to events via events ``value`` == stimuli ``value``.

    Catch rows keep missing ids. An image event whose value is not in the table is an error.
    """
    need = {"image_id", "concept", "value", "concept_split"}
    if not need <= set(stimuli.columns):
        raise ValueError(f"stimuli table lacks column(s) {sorted(need - set(stimuli.columns))}")
    table = stimuli.dropna(subset=["value"]).copy()
    table["value"] = np.round(table["value"].to_numpy(dtype=float)).astype(np.int64)
    if table["value"].duplicated().any():
        dup = table.loc[table["value"].duplicated(), "value"].tolist()[:5]
        raise ValueError(
            f"stimuli table has duplicate 'value' entries {dup}; each image needs a unique value"
        )
    lookup = table.set_index("value")
    images = events["trial_type"] != "catch"
    values = events.loc[images, "value"]
    unknown = values[values.isna() | ~values.isin(lookup.index)]
    if len(unknown):
        raise BadRunError(
            f"run {run}: {len(unknown)} image event(s) with value(s) "
            f"{sorted(set(unknown.dropna().tolist()))[:5]} "
            "not found in the stimuli table (column 'value'); regenerate the stimuli table for this study"
        )
    out = events.copy()
    for col in ("image_id", "concept", "concept_split"):
        mapped = pd.Series(pd.NA, index=out.index, dtype=object)
        mapped[images] = lookup.loc[values.astype(np.int64).to_numpy(), col].astype(str).to_numpy()
        if col in events.columns and col != "concept_split":
            given = events.loc[images, col].astype(str)
            bad = given != mapped[images]
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise BadRunError(
                    f"run {run}: events.tsv {col} {given.iloc[i]!r} disagrees with the stimuli table "
                    f"({mapped[images].iloc[i]!r}) for value {values.iloc[i]}"
                )
        out[col] = mapped
    return out


@dataclass
class ChannelPick:
    """MEG channels picked from a recording header."""

    picks: np.ndarray
    names: list[str]
    dropped: list[str] = field(default_factory=list)
    bad_not_found: list[str] = field(default_factory=list)


def _base_name(name: str) -> str:
    """CTF names carry a system suffix (``MRO11-1609``); compare with and without it."""
    return name.split("-")[0]


def pick_meg_channels(info, bad_channels: tuple[str, ...] | list[str], run: str) -> ChannelPick:
    """Pick the MEG sensors (not references, not misc) by the kind stored in the header; drop bad channels.

    A configured bad channel matches a channel's full name or its name without the CTF suffix.
    """
    import mne

    meg = mne.pick_types(info, meg=True, ref_meg=False, exclude=[])
    if len(meg) == 0:
        raise BadRunError(
            f"run {run}: the recording header has no MEG sensor channel (kinds: "
            f"{sorted({int(ch['kind']) for ch in info['chs']})}); is this an MEG recording?"
        )
    bad = set(bad_channels)
    names = [info["ch_names"][i] for i in meg]
    drop = [n for n in names if n in bad or _base_name(n) in bad]
    matched = set(drop) | {_base_name(n) for n in drop}
    keep = np.array([i for i, n in zip(meg, names, strict=True) if n not in drop], dtype=int)
    return ChannelPick(
        picks=keep,
        names=[info["ch_names"][i] for i in keep],
        dropped=drop,
        bad_not_found=sorted(b for b in bad if b not in matched),
    )


def open_raw(path: Path | str, run: str):
    """Open a recording (``.fif`` or CTF ``.ds``) lazily with MNE, naming the run on failure."""
    from megdecode.recording import CorruptRecordingError, MisnamedRecordingError, read_raw_checked

    path = Path(path)
    if not path.exists():
        raise BadRunError(f"run {run}: recording not found: {path}")
    try:
        return read_raw_checked(path)
    except (CorruptRecordingError, MisnamedRecordingError) as err:
        raise BadRunError(f"run {run}: {err}") from err
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise BadRunError(f"run {run}: cannot read recording {path} ({type(err).__name__}: {err})") from err
