"""THINGS-EEG2 raw sessions -> BIDS-EEG with mne-bids (BrainVision, the format the dataset was recorded in).

One recording per (subject, session, partition): the training partition as ``task-train``, the test partition
as ``task-test`` (the source data's own task labels [V gifale95/eeg_encoding source_to_raw.py]). The stim
channel becomes ``events.tsv`` (one row per onset: the image shown, or a ``catch`` row for a target); channel
positions come from the standard EasyCap M1 (10-10) montage (the cap's own digitisation is not published [S]).
:func:`write_dataset_files` adds the dataset-level files once every recording is written.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd
from mne_bids import make_dataset_description, update_sidecar_json, write_raw_bids

from megdecode import __version__ as MEGDECODE_VERSION
from megdecode.artifacts.paths import bids_eeg_files, bids_eeg_path
from megdecode.datasets.things_eeg2 import (
    BIDS_TASKS,
    PARTITIONS,
    RawSession,
    ThingsEeg2Reader,
    ThingsEeg2Settings,
    settings_from_config,
)
from megdecode.io import atomic_output, write_json, write_tsv

log = logging.getLogger(__name__)

EVENTS_COLUMNS = ["onset", "duration", "trial_type", "value", "sample", "image_number", "image_id", "concept"]
#: the dataset's authors (Gifford et al. 2022), for the converted tree's description
DATASET_AUTHORS = ("Alessandro T. Gifford", "Kshitij Dwivedi", "Gemma Roig", "Radoslaw M. Cichy")
EVENTS_JSON = {
    "trial_type": {
        "Description": "What was on screen",
        "Levels": {
            "exp": "a training image (shown 4 times over the sessions)",
            "test": "a test image (shown 80 times over the sessions)",
            "catch": "a target image (Buzz Lightyear), to be reported at the end of the sequence",
        },
    },
    "value": {"Description": "Code on the stim channel: the image number, 99999 for a target."},
    "sample": {"Description": "Sample index of the onset from the first sample of the recording (0-based)."},
    "image_number": {
        "Description": "1-based index into the partition's images of image_metadata.npy; 0: none."
    },
    "image_id": {"Description": "Image file name without extension; n/a for targets."},
    "concept": {"Description": "THINGS concept of the image; n/a for targets."},
}


def to_mne_raw(session: RawSession, settings: ThingsEeg2Settings) -> mne.io.RawArray:
    """The EEG channels of one raw file as an MNE ``RawArray`` (volts), with standard montage positions."""
    info = mne.create_info(session.eeg_names, session.sfreq, "eeg")
    raw = mne.io.RawArray(session.eeg, info, verbose="error")
    montage = mne.channels.make_standard_montage(settings.montage)
    raw.set_montage(montage, on_missing="warn", verbose="error")
    with raw.info._unlock():
        raw.info["line_freq"] = settings.power_line_hz
        if session.highpass is not None:
            raw.info["highpass"] = session.highpass
        if session.lowpass is not None:
            raw.info["lowpass"] = session.lowpass
    return raw


def events_table(trials: pd.DataFrame, settings: ThingsEeg2Settings) -> pd.DataFrame:
    """BIDS ``events.tsv`` rows of one recording's trial table (``megdecode.datasets.things_eeg2``)."""
    return pd.DataFrame(
        {
            "onset": trials["onset"].to_numpy(dtype=float),
            "duration": settings.image_duration_s,
            "trial_type": trials["trial_type"].to_numpy(),
            "value": trials["code"].to_numpy(dtype=np.int64),
            "sample": trials["sample"].to_numpy(dtype=np.int64),
            "image_number": trials["image_number"].to_numpy(dtype=np.int64),
            "image_id": trials["image_id"].to_numpy(),
            "concept": trials["concept"].to_numpy(),
        },
        columns=EVENTS_COLUMNS,
    )


def convert_recording(
    session: RawSession,
    trials: pd.DataFrame,
    bids_root: Path | str,
    subject: str,
    session_label: str,
    partition: str,
    settings: ThingsEeg2Settings,
) -> dict[str, Path]:
    """Write one raw file as a BIDS-EEG recording; returns its files (``artifacts.paths.BIDS_EEG_FILES``)."""
    task = BIDS_TASKS[partition]
    raw = to_mne_raw(session, settings)
    path = bids_eeg_path(bids_root, subject, session_label, task).update(check=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No events found or provided")
        write_raw_bids(raw, path, format="BrainVision", allow_preload=True, overwrite=True, verbose="error")
    files = {k: Path(v) for k, v in bids_eeg_files(bids_root, subject, session_label, task).items()}
    description = (
        f"Rapid serial visual presentation of object images ({settings.image_duration_s * 1000:g} ms on "
        f"screen, {settings.soa_s * 1000:g} ms onset asynchrony, 20 per sequence); report whether a target "
        "appeared."
    )
    update_sidecar_json(
        path.copy().update(suffix="eeg", extension=".json"),
        {"Manufacturer": "Brain Products", "TaskDescription": description, "EEGReference": "n/a"},
        verbose=False,
    )
    write_tsv(events_table(trials, settings), files["events"])
    log.info(
        "sub-%s ses-%s task-%s: %d events -> %s", subject, session_label, task, len(trials), files["raw"]
    )
    return files


def convert_session(
    recordings: Sequence[tuple[RawSession, pd.DataFrame, str]],
    bids_root: Path | str,
    subject: str,
    session_label: str,
    settings: ThingsEeg2Settings,
) -> list[Path]:
    """Write one session's recordings (``(raw, trials, partition)`` each) into a private staging root beside
    ``bids_root``, then move the session's files into place: parallel sessions never touch shared files
    (mne-bids also writes participants.tsv and the description; :func:`write_dataset_files` writes those)."""
    root = Path(bids_root)
    root.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-bids-eeg-{subject}-{session_label}-"
    for stale in root.parent.glob(f"{prefix}*"):  # left by a killed job
        shutil.rmtree(stale, ignore_errors=True)
    moved = []
    with tempfile.TemporaryDirectory(prefix=prefix, dir=root.parent) as tmp:
        for raw, trials, partition in recordings:
            convert_recording(raw, trials, tmp, subject, session_label, partition, settings)
        staged = Path(bids_eeg_path(tmp, subject, session_label, "x").directory).parent  # sub-X/ses-Y
        for src in sorted(p for p in staged.rglob("*") if p.is_file()):
            dst = root / src.relative_to(tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.append(dst)
    return moved


def write_dataset_files(
    bids_root: Path | str, subjects: Sequence[str], authors: Sequence[str] = DATASET_AUTHORS
) -> None:
    """Dataset description, participants, README and the tasks' ``events.json``, once every recording is
    written."""
    root = Path(bids_root)
    write_tsv(pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects]}), root / "participants.tsv")
    write_json(
        {"participant_id": {"Description": "Unique participant identifier"}}, root / "participants.json"
    )
    make_dataset_description(
        path=root,
        name="THINGS-EEG2 (converted to BIDS by megdecode)",
        dataset_type="raw",
        authors=list(authors),
        generated_by=[{"Name": "megdecode", "Version": MEGDECODE_VERSION}],
        overwrite=True,
        verbose="error",
    )
    for task in BIDS_TASKS.values():
        write_json(EVENTS_JSON, root / f"task-{task}_events.json")
    with atomic_output(root / "README") as tmp:
        tmp.write_text(
            "THINGS-EEG2 (Gifford et al. 2022, NeuroImage 264:119754; https://osf.io/3jk45/), raw EEG "
            "converted "
            f"to BIDS by megdecode for {len(subjects)} subject(s). task-train: training images; task-test: "
            "test images. Events come from the published stim channel.\n"
        )


def convert_study_session(
    section: Mapping[str, Any], bids_root: Path | str, subject: str, session: str
) -> None:
    """Rule ``things_eeg2_bids_session``: both partitions of one session of a validated ``things_eeg2``
    section's dataset, converted to BIDS-EEG under ``bids_root``."""
    settings = settings_from_config(section)
    reader = ThingsEeg2Reader(settings.root, settings)
    recordings = [(*reader.session(subject, session, p), p) for p in PARTITIONS]
    convert_session(recordings, bids_root, subject, session, settings)
