"""Test helpers for THINGS-MEG: a layout twin of ds004212 and trial labelling to check the real metadata.

The layout twin: the real sidecars, renamed per subject/session/run.

The real recordings are CTF ``*_meg.ds`` folders (about 64 GB per subject) that mne cannot write. The twin
either leaves them out, stands in empty ``*_meg.ds`` folders (enough for ``snakemake -n`` to plan the full
study), or writes a short simulated ``*_meg.fif`` with the real channel names, types and a CTF-like sensor
layout (so the real reader code runs). events.tsv keeps the real rows (floats, ``N/A``) up to the end of the
short recording.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode.artifacts.paths import bids_meg_dir, run_stem
from megdecode.datasets.things import SIDECARS, ThingsDataError, find_recording, is_appledouble

log = logging.getLogger(__name__)

DATASET_FILES = (
    "dataset_description.json",
    "participants.tsv",
    "participants.json",
    "task-main_events.json",
    "README",
    "CHANGES",
    ".bidsignore",
)
RECORDING_MODES = ("fif", "empty_ds", "none")


@dataclass(frozen=True)
class TwinSpec:
    """What the twin holds.

    ``missing`` lists ``(subject, session, run, sidecar)`` to delete (sidecar: a key of ``things.SIDECARS``);
    ``source_subject`` is the real subject whose sidecars are copied for every twin subject.
    """

    subjects: Sequence[str]
    sessions: Sequence[str]
    runs: Sequence[str]
    task: str = "main"
    recording: str = "fif"
    duration_s: float = 30.0
    seed: int = 0
    missing: Sequence[tuple[str, str, str, str]] = field(default_factory=tuple)
    source_subject: str = "BIGMEG1"
    appledouble: bool = True
    emptyroom: bool = True


def make_layout_twin(source_root: Path | str, dest: Path | str, spec: TwinSpec) -> Path:
    """Build the twin under ``dest`` from the real metadata at ``source_root`` and return ``dest``."""
    source_root, dest = Path(source_root), Path(dest)
    if spec.recording not in RECORDING_MODES:
        raise ValueError(f"recording must be one of {RECORDING_MODES}, not {spec.recording!r}")
    dest.mkdir(parents=True, exist_ok=True)
    for name in DATASET_FILES:
        if (source_root / name).is_file():
            shutil.copyfile(source_root / name, dest / name)
    for i_sub, subject in enumerate(spec.subjects):
        for i_ses, session in enumerate(spec.sessions):
            _copy_session(source_root, dest, spec, subject, session)
            for i_run, run in enumerate(spec.runs):
                run_seed = np.random.SeedSequence([spec.seed, i_sub, i_ses, i_run])
                _make_run(source_root, dest, spec, subject, session, run, run_seed)
    if spec.emptyroom:
        er = dest / "sub-emptyroom" / "ses-20190613" / "meg"
        er.mkdir(parents=True, exist_ok=True)
        (er / "sub-emptyroom_ses-20190613_task-noise_meg.json").write_text("{}\n")
    _drop_missing(dest, spec)
    return dest


def _source_folder(source_root: Path, spec: TwinSpec, session: str) -> Path:
    return bids_meg_dir(source_root, spec.source_subject, session)


def _rename(name: str, spec: TwinSpec, subject: str) -> str:
    return name.replace(f"sub-{spec.source_subject}", f"sub-{subject}")


def _copy_session(source_root: Path, dest: Path, spec: TwinSpec, subject: str, session: str) -> None:
    src_ses = source_root / f"sub-{spec.source_subject}" / f"ses-{session}"
    src_scans = src_ses / f"sub-{spec.source_subject}_ses-{session}_scans.tsv"
    out_dir = bids_meg_dir(dest, subject, session)
    out_dir.mkdir(parents=True, exist_ok=True)
    if src_scans.is_file():
        text = _rename(src_scans.read_text(), spec, subject)
        if spec.recording == "fif":
            text = text.replace("_meg.ds", "_meg.fif")
        (out_dir.parent / _rename(src_scans.name, spec, subject)).write_text(text)


def _make_run(
    source_root: Path,
    dest: Path,
    spec: TwinSpec,
    subject: str,
    session: str,
    run: str,
    seed: np.random.SeedSequence,
) -> None:
    src_dir = _source_folder(source_root, spec, session)
    src_stem = run_stem(spec.source_subject, session, run, spec.task)
    out_dir = bids_meg_dir(dest, subject, session)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"no real metadata for ses-{session} in {src_dir}; use sessions 01..12")
    for path in sorted(src_dir.iterdir()):
        if src_stem not in path.name or (is_appledouble(path) and not spec.appledouble):
            continue
        target = out_dir / _rename(path.name, spec, subject)
        if path.name.endswith("_events.tsv") and not is_appledouble(path) and spec.recording == "fif":
            _write_truncated_events(path, target, spec.duration_s)
        else:
            shutil.copyfile(path, target)
    stem = run_stem(subject, session, run, spec.task)
    if spec.recording == "empty_ds":
        (out_dir / f"{stem}_meg.ds").mkdir(exist_ok=True)
    elif spec.recording == "fif":
        channels = src_dir / f"{src_stem}_channels.tsv"
        if not channels.is_file():
            channels = next(src_dir.glob(f"sub-{spec.source_subject}_ses-*_channels.tsv"))
        events = out_dir / f"{stem}_events.tsv"
        write_simulated_fif(channels, events, out_dir / f"{stem}_meg.fif", spec.duration_s, seed)


def _write_truncated_events(src: Path, dest: Path, duration_s: float) -> None:
    """Keep the real rows (text as is) whose 1.3 s epoch ends inside the short recording."""
    lines = src.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    onset_col = header.rstrip("\n").split("\t").index("onset")
    kept = [r for r in rows if float(r.split("\t")[onset_col]) + 1.3 < duration_s]
    dest.write_text(header + "".join(kept))


def _drop_missing(dest: Path, spec: TwinSpec) -> None:
    for subject, session, run, key in spec.missing:
        path = (
            bids_meg_dir(dest, subject, session)
            / f"{run_stem(subject, session, run, spec.task)}{SIDECARS[key]}"
        )
        if path.exists():
            path.unlink()


# --- simulated recording --------------------------------------------------------------------------------


def _sensor_positions(names: Iterable[str]) -> np.ndarray:
    """3-D positions (m) on a 10 cm hemisphere from mne's CTF-275 2-D layout (names without suffix)."""
    import mne

    layout = mne.channels.read_layout("CTF275")
    xy = {n: p[:2] + p[2:4] / 2 for n, p in zip(layout.names, layout.pos, strict=True)}
    centre = np.mean(list(xy.values()), axis=0)
    pts = np.array([xy[n.split("-")[0]] - centre for n in names])
    radius = np.linalg.norm(pts, axis=1)
    theta = radius / radius.max() * np.deg2rad(110)
    phi = np.arctan2(pts[:, 1], pts[:, 0])
    return 0.1 * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)


def _bids_to_mne_type(name: str, bids_type: str) -> str:
    if re.match(r"^M[LRZ][CFOPT]\d{2}", name):
        return "mag"
    if bids_type.upper().startswith("MEGREF"):
        return "ref_meg"
    if name == "UPPT001":
        return "stim"
    return "misc"


def write_simulated_fif(
    channels_tsv: Path, events_tsv: Path, out: Path, duration_s: float, seed: np.random.SeedSequence
) -> None:
    """A short CTF-like recording: real channel names/types, noise plus evoked responses at events' samples.

    Each image number gets its own seeded spatial pattern on the MEG sensors (a response 80-400 ms after
    onset); the trigger UPPT001 steps 150 ms before the photodiode-corrected sample; the photodiode
    UADC016-2104 is high for 0.5 s from each sample.
    """
    import mne
    from mne.io.constants import FIFF

    from megdecode.datasets.things import read_events_tsv

    channels = pd.read_csv(channels_tsv, sep="\t", dtype=str)
    names = channels["name"].tolist()
    types = [_bids_to_mne_type(n, t) for n, t in zip(names, channels["type"], strict=True)]
    sfreq = 1200.0
    n_times = int(round(duration_s * sfreq))
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((len(names), n_times)).astype(np.float32)
    is_meg = np.array([t == "mag" for t in types])
    is_ref = np.array([t == "ref_meg" for t in types])
    data[is_meg | is_ref] *= 2e-13
    events = read_events_tsv(events_tsv)
    t = np.arange(int(0.5 * sfreq)) / sfreq
    kernel = (np.exp(-0.5 * ((t - 0.15) / 0.04) ** 2) - 0.6 * np.exp(-0.5 * ((t - 0.3) / 0.06) ** 2)).astype(
        np.float32
    )
    n_meg = int(is_meg.sum())
    trig, diode = names.index("UPPT001"), names.index("UADC016-2104")
    data[[trig, diode]] = 0.0
    for ev in events.itertuples():
        s = int(ev.sample)
        if ev.value is not pd.NA and not pd.isna(ev.value):
            pattern = np.random.default_rng([int(ev.value), 7]).standard_normal(n_meg).astype(np.float32)
            stop = min(n_times, s + len(kernel))
            data[is_meg, s:stop] += 4e-13 * pattern[:, None] * kernel[None, : stop - s]
        data[trig, max(0, s - int(0.15 * sfreq)) : max(0, s - int(0.15 * sfreq)) + 12] = 1.0
        data[diode, s : s + int(0.5 * sfreq)] = 5.0
    info = mne.create_info(names, sfreq, types)
    pos = _sensor_positions([n for n, m in zip(names, is_meg, strict=True) if m])
    for k, idx in enumerate(np.flatnonzero(is_meg)):
        ch = info["chs"][idx]
        ez = pos[k] / np.linalg.norm(pos[k])
        ex = np.cross([0.0, 0.0, 1.0], ez) if abs(ez[2]) < 0.999 else np.array([1.0, 0.0, 0.0])
        ex /= np.linalg.norm(ex)
        ch["loc"][:] = np.concatenate([pos[k], ex, np.cross(ez, ex), ez])
        ch["coil_type"] = FIFF.FIFFV_COIL_CTF_GRAD
    with info._unlock():
        info["line_freq"] = 60.0
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(pd.Timestamp("2019-06-13", tz="UTC").to_pydatetime())
    out.parent.mkdir(parents=True, exist_ok=True)
    raw.save(out, fmt="single", overwrite=True, verbose="error")


def write_fake_stimuli(stimuli: pd.DataFrame, images_root: Path | str, size: int = 32, seed: int = 0) -> Path:
    """Small seeded JPEGs at ``images_root/<file>`` for every row of a stimuli table (stands in for THINGS).

    Each concept gets its own colour and each exemplar its own noise, so image latents differ by concept.
    """
    from PIL import Image

    root = Path(images_root)
    for row in stimuli.itertuples():
        colour = np.random.default_rng([seed, sum(map(ord, row.concept))]).uniform(0, 255, 3)
        noise = np.random.default_rng([seed, int(row.value)]).normal(0, 40, (size, size, 3))
        pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
        out = root / row.file
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(out, quality=90)
    return root


# --- reading the real metadata back (tests only) ---


def recording_path(bids_root: Path | str, subject: str, session: str, run: str, task: str) -> str:
    """Path of the run's recording for a rule's input: the ``.ds`` folder or ``.fif`` file that exists,
    else the ``.ds`` path (so a missing recording is reported under the real dataset's name).

    A layout twin stands a short ``*_meg.fif`` in for each CTF ``*_meg.ds`` folder (mne cannot write CTF).
    """
    found = find_recording(bids_root, subject, session, run, task)
    default = bids_meg_dir(bids_root, subject, session) / f"{run_stem(subject, session, run, task)}_meg.ds"
    return str(found if found is not None else default)


def label_trials(events: pd.DataFrame, stimuli: pd.DataFrame) -> pd.DataFrame:
    """Add ``image_id``, ``concept`` and ``split_group`` to events (joined on ``value``).

    ``split_group``: ``train`` (exp image of a training concept), ``test_small`` (a test image; average its
    repetitions), ``test_large`` (exp image of a test concept, single trial) or ``catch`` (excluded).
    The train/val division of ``train`` trials is the preprocessing stage's choice.
    """
    lookup = stimuli.set_index("value")[["image_id", "concept", "concept_split"]]
    out = events.copy()
    known = out["value"].isin(lookup.index)
    missing = (out["trial_type"] != "catch") & ~known
    if missing.any():
        raise ThingsDataError(
            f"{int(missing.sum())} exp/test trials have image numbers missing from the stimuli table "
            f"(e.g. {sorted(out.loc[missing, 'value'].astype(int).unique())[:5]}); rebuild the stimuli table"
        )
    values = out["value"].astype("float")
    index = lookup.set_axis(lookup.index.astype(float))
    out["image_id"] = values.map(index["image_id"])
    out["concept"] = values.map(index["concept"])
    test_concept = values.map(index["concept_split"]).eq("test").to_numpy()
    out["split_group"] = np.select(
        [out["trial_type"] == "catch", out["trial_type"] == "test", test_concept],
        ["catch", "test_small", "test_large"],
        default="train",
    )
    return out


def split_summary(labelled: pd.DataFrame) -> dict[str, int]:
    """Number of distinct images per split group (catch: trials)."""
    summary = {
        g: int(labelled.loc[labelled["split_group"] == g, "image_id"].nunique())
        for g in ("train", "test_small", "test_large")
    }
    summary["catch"] = int((labelled["split_group"] == "catch").sum())
    return summary
