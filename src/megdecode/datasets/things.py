"""The real THINGS-MEG dataset (OpenNeuro ds004212): inventory, events, channels and the stimuli table.

Quirks of the real files handled here (see the dataset notes shared with the team):

- MEG axial gradiometers are typed ``OTHER`` in channels.tsv: recognised by their CTF sensor name instead;
  ``MRO11-1609`` is dropped (as the official THINGS-MEG preprocessing does).
- events.tsv numbers are written as floats (``24812.0``); catch rows use ``N/A`` (not BIDS ``n/a``);
  event times come from the ``sample`` column (photodiode-corrected).
- Some runs lack channels.tsv, meg.json or coordsystem.json: the inventory flags them so the reader falls back
  to the recording's own header, with a warning in the QC table.
- macOS AppleDouble files (``._*``) sit beside real files and match naive ``*_events.tsv`` globs; they are
  ignored, as is the ``sub-emptyroom`` folder.

Helpers meant for other stages (e.g. the per-run signal reader): :func:`is_appledouble`,
:func:`find_recording`, :func:`read_events_tsv`, :func:`is_meg_sensor`, :func:`meg_sensor_names`,
:func:`meg_picks`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode.artifacts.paths import bids_meg_dir, bids_run_file, run_stem
from megdecode.artifacts.stimuli import write_stimuli
from megdecode.io import read_json, read_tsv, write_tsv

log = logging.getLogger(__name__)

#: CTF axial gradiometer names (``MLC11-1609``): M, side L/R/Z, region letter, two digits, system suffix.
MEG_SENSOR_RE = re.compile(r"^M[LRZ][CFOPT]\d{2}(-\d+)?$")
#: Channels the official THINGS-MEG preprocessing drops (a broken sensor).
DROPPED_CHANNELS: tuple[str, ...] = ("MRO11-1609",)
#: Recording formats looked for, in order; a twin uses ``.fif`` where the real dataset has ``.ds`` folders.
RECORDING_EXTENSIONS: tuple[str, ...] = (".ds", ".fif")
#: Per-run sidecars checked by the inventory: column name -> file suffix.
SIDECARS: dict[str, str] = {
    "events": "_events.tsv",
    "channels": "_channels.tsv",
    "meg_json": "_meg.json",
    "coordsystem": "_coordsystem.json",
}
EVENT_COLUMNS: tuple[str, ...] = ("onset", "duration", "trial_type", "value", "sample")
ROLES: tuple[str, ...] = ("exp", "test", "catch")
FALLBACK_NOTE = {
    "channels": "no channels.tsv: channel names and types from the recording header",
    "meg_json": "no meg.json: sampling rate and recording info from the recording header",
    "coordsystem": "no coordsystem.json: sensor and head-coil positions from the recording header",
}


class ThingsDataError(ValueError):
    """The THINGS-MEG files do not match what the workflow expects; the message names the file and the fix."""


# --- small helpers other stages may call ---------------------------------------------------------------


def is_appledouble(path: Path | str) -> bool:
    """True for macOS AppleDouble metadata files (``._name``), which are not data."""
    return Path(path).name.startswith("._")


def find_recording(
    bids_root: Path | str,
    subject: str,
    session: str,
    run: str,
    task: str,
    extensions: Sequence[str] = RECORDING_EXTENSIONS,
) -> Path | None:
    """The run's ``*_meg.<ext>`` recording (CTF ``.ds`` folder or ``.fif``), or None when absent."""
    folder = bids_meg_dir(bids_root, subject, session)
    stem = run_stem(subject, session, run, task)
    for ext in extensions:
        candidate = folder / f"{stem}_meg{ext}"
        if candidate.exists() and not is_appledouble(candidate):
            return candidate
    return None


def read_events_tsv(path: Path | str) -> pd.DataFrame:
    """Read a THINGS-MEG events.tsv robustly.

    ``N/A`` and ``n/a`` are both missing; float-written integers (``24812.0``) become nullable ints
    (``value``, ``sample``, ``things_category_nr``); ``trial_type`` is a lower-case string.
    """
    path = Path(path)
    if is_appledouble(path):
        raise ThingsDataError(
            f"{path} is a macOS AppleDouble file ('._' prefix), not an events table; ignore it"
        )
    try:
        df = read_tsv(path, dtype={"trial_type": str})
    except UnicodeDecodeError as err:
        raise ThingsDataError(
            f"{path} is not a text TSV ({err}); replace it with the dataset's events.tsv"
        ) from err
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise ThingsDataError(
            f"{path} lacks column(s) {missing} (has {list(df.columns)}); expected ds004212 v3 events "
            "(onset duration trial_type value sample)"
        )
    df["trial_type"] = df["trial_type"].astype(str).str.strip().str.lower()
    bad_roles = sorted(set(df["trial_type"]) - set(ROLES))
    if bad_roles:
        raise ThingsDataError(f"{path}: unknown trial_type(s) {bad_roles}; expected one of {list(ROLES)}")
    for col in ("value", "sample", "things_category_nr"):
        if col in df.columns:
            df[col] = _as_int(df[col], path, col)
    if df["sample"].isna().any():
        raise ThingsDataError(
            f"{path}: 'sample' is missing on rows {np.flatnonzero(df['sample'].isna()).tolist()}"
        )
    no_value = (df["trial_type"] != "catch") & df["value"].isna()
    if no_value.any():
        raise ThingsDataError(
            f"{path}: exp/test rows without an image number ('value'): {np.flatnonzero(no_value).tolist()}"
        )
    return df


def _as_int(series: pd.Series, path: Path, col: str) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & numbers.isna()
    frac = numbers.notna() & (numbers != numbers.round())
    if bad.any() or frac.any():
        rows = np.flatnonzero(bad | frac).tolist()[:5]
        raise ThingsDataError(f"{path}: column '{col}' must hold whole numbers; bad rows {rows}")
    return numbers.round().astype("Int64")


def is_meg_sensor(name: str) -> bool:
    """True for a CTF MEG axial gradiometer name (whatever channels.tsv says its type is)."""
    return bool(MEG_SENSOR_RE.match(name))


def meg_sensor_names(names: Iterable[str], drop: Sequence[str] = DROPPED_CHANNELS) -> list[str]:
    """The MEG sensors among ``names`` (recognised by name, e.g. typed OTHER), without the dropped ones."""
    return [n for n in names if is_meg_sensor(n) and n not in set(drop)]


def meg_picks(raw_or_info, drop: Sequence[str] = DROPPED_CHANNELS) -> list[str]:
    """Names of the MEG sensors to decode from, robust to channels.tsv typing them OTHER/misc.

    Uses the recording's MEG types when they are set (``mne.pick_types(meg=True, ref_meg=False)``) and
    falls back to the CTF name pattern when a reader retyped them (mne-bids maps ``OTHER`` to ``misc``).
    """
    import mne

    info = getattr(raw_or_info, "info", raw_or_info)
    typed = [info["ch_names"][i] for i in mne.pick_types(info, meg=True, ref_meg=False, exclude=[])]
    by_name = meg_sensor_names(info["ch_names"], drop=())
    names = typed if len(typed) >= len(by_name) and typed else by_name
    return [n for n in names if n not in set(drop)]


def study_param(params, key: str):
    """A study setting from a rule's ``params``: a named param ``key`` or ``params.study[key]``.

    Lets the bids rules pass either ``params: study=config["study"]`` or the single values.
    """
    if hasattr(params, key):
        return getattr(params, key)
    study = getattr(params, "study", None)
    if study is None or key not in study:
        raise KeyError(f"rule params lack '{key}' (pass params: study=config['study'] or {key}=...)")
    return study[key]


# --- inventory ------------------------------------------------------------------------------------------


def discover_runs(bids_root: Path | str, task: str) -> pd.DataFrame:
    """Every (subject, session, run) present in the BIDS tree, found with mne-bids.

    ``sub-emptyroom`` and hidden/AppleDouble files are ignored.
    """
    from mne_bids import get_entity_vals

    root = Path(bids_root)
    rows = []
    for subject in get_entity_vals(root, "subject", ignore_subjects="emptyroom", ignore_hidden=True):
        for session in get_entity_vals(root / f"sub-{subject}", "session", ignore_hidden=True) or []:
            folder = bids_meg_dir(root, subject, session)
            if not folder.is_dir():
                continue
            runs = {
                m.group(1)
                for p in folder.iterdir()
                if not is_appledouble(p)
                and (m := re.match(rf"^sub-{subject}_ses-{session}_task-{task}_run-([A-Za-z0-9]+)_", p.name))
            }
            rows += [{"subject": subject, "session": session, "run": r} for r in sorted(runs)]
    return pd.DataFrame(rows, columns=["subject", "session", "run"])


@dataclass(frozen=True)
class RunFiles:
    """What exists for one configured run."""

    subject: str
    session: str
    run: str
    recording: Path | None
    sidecars: dict[str, Path | None]
    appledouble: tuple[str, ...]


def run_files(bids_root: Path | str, subject: str, session: str, run: str, task: str) -> RunFiles:
    """Locate one run's recording and sidecars (AppleDouble twins are listed, never used)."""
    folder = bids_meg_dir(bids_root, subject, session)
    stem = run_stem(subject, session, run, task)
    sidecars = {}
    for key, suffix in SIDECARS.items():
        path = folder / f"{stem}{suffix}"
        sidecars[key] = path if path.is_file() else None
    apple = tuple(sorted(p.name for p in folder.glob(f"._{stem}_*"))) if folder.is_dir() else ()
    return RunFiles(
        subject, session, run, find_recording(bids_root, subject, session, run, task), sidecars, apple
    )


def _recording_sfreq(recording: Path) -> float | None:
    """Sampling rate from the recording's own header (None when the file cannot be read, e.g. a plan twin)."""
    from megdecode.recording import read_raw_checked

    try:
        raw = read_raw_checked(recording)
    except Exception as err:  # noqa: BLE001 - any unreadable header only means "unknown" here
        log.warning("cannot read header of %s (%s)", recording, err)
        return None
    return float(raw.info["sfreq"])


def inventory_row(bids_root: Path | str, subject: str, session: str, run: str, task: str) -> dict:
    """One inventory row: which files exist, trial counts, sampling rate and warnings."""
    files = run_files(bids_root, subject, session, run, task)
    root = Path(bids_root)
    warnings: list[str] = [
        FALLBACK_NOTE[k] for k in ("channels", "meg_json", "coordsystem") if not files.sidecars[k]
    ]
    if files.appledouble:
        warnings.append(f"ignored AppleDouble file(s) {', '.join(files.appledouble)}")
    row: dict = {
        "subject": subject,
        "session": session,
        "run": run,
        "recording": files.recording.relative_to(root).as_posix() if files.recording else "n/a",
        "recording_format": files.recording.suffix.lstrip(".") if files.recording else "n/a",
    }
    row.update({key: path is not None for key, path in files.sidecars.items()})
    sfreq = None
    if files.sidecars["meg_json"]:
        sfreq = read_json(files.sidecars["meg_json"]).get("SamplingFrequency")
    elif files.recording is not None:
        sfreq = _recording_sfreq(files.recording)
        if sfreq is None:
            warnings.append("recording header unreadable: sampling rate unknown")
    row["sfreq"] = float(sfreq) if sfreq is not None else np.nan
    if files.sidecars["channels"]:
        channels = read_tsv(files.sidecars["channels"], dtype=str)
        sensors = [n for n in channels["name"] if is_meg_sensor(n)]
        other = channels[channels["name"].isin(sensors) & (channels["type"].str.upper() == "OTHER")]
        row["n_meg"] = len(meg_sensor_names(sensors))
        if len(other):
            warnings.append(f"channels.tsv types {len(other)} MEG sensors OTHER: recognised by name")
    else:
        row["n_meg"] = np.nan
    counts = {f"n_{role}": np.nan for role in ROLES}
    if files.sidecars["events"]:
        events = read_events_tsv(files.sidecars["events"])
        counts = {f"n_{role}": int((events["trial_type"] == role).sum()) for role in ROLES}
        if events.empty:
            note = f"{files.sidecars['events']} has a header but no trials"
            log.warning("sub-%s ses-%s run-%s: %s", subject, session, run, note)
            warnings.append(note)
        if np.isfinite(row["sfreq"]):
            drift = (events["sample"].astype(float) - events["onset"] * row["sfreq"]).abs()
            if (drift > 1).any():
                warnings.append(
                    f"events 'sample' differs from onset*sfreq by up to {drift.max():.0f} samples"
                )
    row.update(counts)
    row["warning"] = "; ".join(warnings) if warnings else "n/a"
    return row


def inventory(
    bids_root: Path | str, subjects: Sequence[str], sessions: Sequence[str], runs: Sequence[str], task: str
) -> pd.DataFrame:
    """One row per configured run; raises ThingsDataError naming every run without recording or events."""
    root = Path(bids_root)
    if not root.is_dir():
        raise ThingsDataError(
            f"BIDS root {root} does not exist; set study.bids_root to a downloaded ds004212"
        )
    present = discover_runs(root, task)
    configured = [(s, ses, r) for s in subjects for ses in sessions for r in runs]
    extra = set(map(tuple, present.to_numpy())) - set(configured) if len(present) else set()
    if extra:
        log.info("%d run(s) in %s are not configured and will be skipped", len(extra), root)
    from tqdm import tqdm

    rows = [
        inventory_row(root, s, ses, r, task) for s, ses, r in tqdm(configured, desc="inventory", unit="run")
    ]
    table = pd.DataFrame(rows)
    problems = [
        f"sub-{r.subject} ses-{r.session} run-{r.run}: no {what}"
        for r in table.itertuples()
        for what, missing in (
            ("recording (*_meg.ds / *_meg.fif)", r.recording == "n/a"),
            ("events.tsv", not r.events),
        )
        if missing
    ]
    if problems:
        shown = "\n  - ".join(problems[:20]) + (
            f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        raise ThingsDataError(
            f"{len(problems)} configured run(s) are incomplete in {root}:\n  - {shown}\n"
            "Download the missing files, or remove those subjects/sessions/runs from the study section "
            "of the config."
        )
    return table


def write_inventory(
    bids_root: Path | str,
    subjects: Sequence[str],
    sessions: Sequence[str],
    runs: Sequence[str],
    task: str,
    out_tsv: Path | str,
) -> pd.DataFrame:
    """Write the inventory TSV (one row per configured run) and return it."""
    table = ThingsMegReader(bids_root, None, subjects, sessions, runs, task).inventory()
    n_warn = int((table["warning"] != "n/a").sum())
    log.info("inventory: %d runs, %d with warnings", len(table), n_warn)
    write_tsv(table, out_tsv)
    return table


# --- image table and stimuli table ----------------------------------------------------------------------

_EXEMPLAR_RE = re.compile(r"_(\d+)[a-z]*$")


def read_image_table(path: Path | str) -> pd.DataFrame:
    """Normalise a user image table (things_meg_images.tsv or a v1.0.x events.tsv) to
    ``value file concept exemplar trial_type``; rows without an image number (catch) are dropped.

    ``value`` is the THINGS image number (events.tsv ``value``): column ``things_image_nr`` (or ``value``);
    ``file`` from ``file_path``/``file``/``things_path``; ``concept`` from ``concept`` or the file's folder;
    ``exemplar`` from ``things_exemplar_nr``/``exemplar`` or the file name (``aardvark_01b`` -> 1).
    """
    path = Path(path)
    raw = read_tsv(path)
    value_col = _first_column(raw, ("things_image_nr", "value"), path, "the THINGS image number")
    file_col = _first_column(raw, ("file_path", "file", "things_path"), path, "the image file")
    table = pd.DataFrame(
        {"value": _as_int(raw[value_col], path, value_col), "file": raw[file_col].astype(str)}
    )
    table["trial_type"] = raw["trial_type"].astype(str).str.lower() if "trial_type" in raw else "n/a"
    table = table[table["value"].notna()].copy()
    given = raw.loc[table.index, "concept"] if "concept" in raw else pd.Series(None, index=table.index)
    from_dir = table["file"].map(lambda f: Path(f).parent.name if "/" in f else None)
    table["concept"] = given.astype(object).where(given.notna(), from_dir)
    ex_col = next((c for c in ("things_exemplar_nr", "exemplar") if c in raw), None)
    exemplar = (
        _as_int(raw.loc[table.index, ex_col], path, ex_col) if ex_col else pd.Series(pd.NA, index=table.index)
    )
    parsed = table["file"].map(lambda f: _parse_exemplar(Path(f).stem))
    table["exemplar"] = exemplar.fillna(parsed.astype("Int64"))
    if table["concept"].isna().any() or table["exemplar"].isna().any():
        bad = table.loc[table["concept"].isna() | table["exemplar"].isna(), "file"].head(5).tolist()
        raise ThingsDataError(
            f"{path}: cannot tell concept/exemplar of {bad}; add 'concept' and 'exemplar' columns"
        )
    table = table.drop_duplicates(["value", "file"])
    dup = table["value"].duplicated(keep=False)
    if dup.any():
        raise ThingsDataError(
            f"{path}: image number(s) {_ints(table.loc[dup, 'value'].unique())} map to several files; "
            "keep one row per THINGS image number"
        )
    table["exemplar"] = table["exemplar"].astype(int)
    table["value"] = table["value"].astype(int)
    return table.reset_index(drop=True)


def _first_column(df: pd.DataFrame, names: Sequence[str], path: Path, what: str) -> str:
    for name in names:
        if name in df.columns:
            return name
    raise ThingsDataError(
        f"{path}: no column for {what}; expected one of {list(names)} (has {list(df.columns)})"
    )


def _parse_exemplar(stem: str) -> float:
    match = _EXEMPLAR_RE.search(stem)
    return float(match.group(1)) if match else np.nan


def read_study_events(
    bids_root: Path | str, subjects: Sequence[str], sessions: Sequence[str], runs: Sequence[str], task: str
) -> pd.DataFrame:
    """The events of every configured run, with ``subject session run`` columns."""
    frames = []
    for s in subjects:
        for ses in sessions:
            for r in runs:
                path = Path(bids_run_file(bids_root, s, ses, r, task, "events", ".tsv"))
                if not path.is_file():
                    raise ThingsDataError(
                        f"events file missing: {path}; download it or drop the run from the config"
                    )
                frames.append(
                    read_events_tsv(path).assign(subject=s, session=ses, run=r, events_file=str(path))
                )
    return pd.concat(frames, ignore_index=True)


def _ints(values, n: int = 5) -> list[int]:
    """The first ``n`` sorted distinct values as plain ints (numpy's repr would print ``np.int64(6)``)."""
    return sorted({int(v) for v in values if pd.notna(v)})[:n]


def _files_with(events: pd.DataFrame, values: pd.Series) -> str:
    """`` in <events files>`` naming the events files (column ``events_file``) whose rows hold ``values``."""
    if "events_file" not in events.columns:
        return ""
    files = sorted(set(events.loc[events["value"].isin(set(values.dropna())), "events_file"].astype(str)))
    if not files:
        return ""
    return f" in {', '.join(files[:3])}" + (f" and {len(files) - 3} more file(s)" if len(files) > 3 else "")


def stimuli_from_events(events: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """STIMULI_TABLE rows for every exp/test image shown (docs/ARCHITECTURE.md, stimuli contract).

    ``file`` is ``<concept>/<file name>`` (relative to the THINGS image folder); ``image_id``: the file stem.
    Test concepts are the concepts of the ``test`` images (shown, or marked ``test`` in the image table).
    """
    shown = events[events["trial_type"] != "catch"][["value", "trial_type"]].drop_duplicates()
    both = shown["value"].duplicated(keep=False)
    if both.any():
        raise ThingsDataError(
            f"image number(s) {_ints(shown.loc[both, 'value'].unique())} appear as both exp and test trials"
        )
    merged = shown.merge(images, on="value", how="left", suffixes=("", "_table"))
    unknown = merged["file"].isna()
    if unknown.any():
        raise ThingsDataError(
            f"{int(unknown.sum())} image number(s) from events.tsv are not in the image table "
            f"(e.g. {_ints(merged.loc[unknown, 'value'])}"
            f"{_files_with(events, merged.loc[unknown, 'value'])}); "
            "point study.image_table to a table covering all THINGS-MEG images (things_meg_images.tsv), or "
            "fix those events files"
        )
    mismatch = (merged["trial_type_table"] != "n/a") & (merged["trial_type_table"] != merged["trial_type"])
    if mismatch.any():
        raise ThingsDataError(
            f"image table and events disagree on exp/test for image number(s) "
            f"{_ints(merged.loc[mismatch, 'value'])}{_files_with(events, merged.loc[mismatch, 'value'])}; "
            "check study.image_table"
        )
    test_concepts = set(merged.loc[merged["trial_type"] == "test", "concept"])
    test_concepts |= set(images.loc[images["trial_type"] == "test", "concept"])
    table = pd.DataFrame(
        {
            "image_id": merged["file"].map(lambda f: Path(f).stem),
            "file": [f"{c}/{Path(f).name}" for c, f in zip(merged["concept"], merged["file"], strict=True)],
            "concept": merged["concept"],
            "exemplar": merged["exemplar"].astype(int),
            "role": merged["trial_type"],
            "concept_split": np.where(merged["concept"].isin(test_concepts), "test", "train"),
            "value": merged["value"].astype(int),
        }
    )
    if table["image_id"].duplicated().any():
        dups = table.loc[table["image_id"].duplicated(), "image_id"].head(5).tolist()
        raise ThingsDataError(f"image file names are not unique across image numbers: {dups}")
    return table.sort_values(["concept", "exemplar", "image_id"]).reset_index(drop=True)


def write_stimuli_table(
    bids_root: Path | str,
    image_table: Path | str,
    subjects: Sequence[str],
    sessions: Sequence[str],
    runs: Sequence[str],
    task: str,
    out_tsv: Path | str,
) -> pd.DataFrame:
    """Write STIMULI_TABLE for a real THINGS-MEG study and return it."""
    if image_table is None or not Path(image_table).is_file():
        raise ThingsDataError(
            f"image table {image_table!r} not found; set study.image_table to a TSV mapping THINGS image "
            "numbers "
            "to files (e.g. things_meg_images.tsv: columns things_image_nr, file_path, concept)"
        )
    table = ThingsMegReader(bids_root, image_table, subjects, sessions, runs, task).stimuli_table()
    counts = table.groupby(["role", "concept_split"]).size().to_dict()
    log.info("stimuli table: %d images %s", len(table), counts)
    write_stimuli(table, out_tsv)
    return table


# --- the dataset reader (megdecode.datasets.DatasetReader) ------------------------------------------------


@dataclass(frozen=True)
class ThingsMegReader:
    """THINGS-MEG at ``bids_root`` for the configured runs; ``image_table`` maps image numbers to files."""

    bids_root: Path | str
    image_table: Path | str | None
    subjects: Sequence[str]
    sessions: Sequence[str]
    runs: Sequence[str]
    task: str

    def inventory(self) -> pd.DataFrame:
        return inventory(self.bids_root, self.subjects, self.sessions, self.runs, self.task)

    def trials(self, subject: str) -> pd.DataFrame:
        """The events of the subject's configured runs (catch trials included), with ``session``/``run``."""
        return read_study_events(self.bids_root, [subject], self.sessions, self.runs, self.task)

    def stimuli_table(self) -> pd.DataFrame:
        if self.image_table is None:
            raise ThingsDataError("no image table: set study.image_table (e.g. things_meg_images.tsv)")
        events = read_study_events(self.bids_root, self.subjects, self.sessions, self.runs, self.task)
        return stimuli_from_events(events, read_image_table(self.image_table))


def _run_problems(bids_root: str, subject: str, session: str, run: str, task: str) -> list[str]:
    """What a configured run of an existing dataset lacks (recording, events); a renamed file is named."""
    folder = bids_meg_dir(bids_root, subject, session)
    stem = run_stem(subject, session, run, task)
    name = f"sub-{subject} ses-{session} run-{run}"
    problems = []
    if not ((folder / f"{stem}_meg.ds").is_dir() or (folder / f"{stem}_meg.fif").is_file()):
        others = sorted(
            p.name
            for p in folder.glob(f"{stem}*")  # nothing when the folder does not exist
            if p.name != f"{stem}_meg.json" and ("_meg" in p.name or p.suffix in (".fif", ".ds"))
        )
        hint = "".join(
            f"; found {other}: rename it to {stem}_meg{'.ds' if '.ds' in other else '.fif'}"
            for other in others
        )
        problems.append(f"{name}: no recording (*_meg.ds / *_meg.fif){hint}")
    if not (folder / f"{stem}_events.tsv").is_file():
        problems.append(f"{name}: no events.tsv")
    return problems


def check_dataset_complete(
    bids_root: str, subjects: Sequence[str], sessions: Sequence[str], runs: Sequence[str], task: str
) -> None:
    """Raise FileNotFoundError naming every configured run of an existing dataset without recording or events.

    Checked when the workflow starts (file names only), so a missing or renamed file is explained before
    Snakemake looks for a run's inputs; the inventory job checks the contents.
    """
    if not Path(bids_root).is_dir():
        raise FileNotFoundError(
            f"BIDS root {bids_root} does not exist; set study.bids_root to a downloaded ds004212"
        )
    problems = [
        problem
        for subject in subjects
        for session in sessions
        for run in runs
        for problem in _run_problems(bids_root, subject, session, run, task)
    ]
    if problems:
        n_runs = len({p.split(":")[0] for p in problems})
        shown = "\n  - ".join(problems[:20]) + (
            f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        raise FileNotFoundError(
            f"{n_runs} configured run(s) are incomplete in {bids_root}:\n  - {shown}\n"
            "Download (or rename) the missing files, or remove those subjects/sessions/runs from the study "
            "section of the config."
        )
