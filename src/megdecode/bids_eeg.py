"""THINGS-EEG2 raw sessions -> BIDS-EEG with mne-bids (BrainVision, the format the dataset was recorded in).

One recording per (subject, session, partition): the training partition as ``task-train``, the test partition
as ``task-test`` (the source data's own task labels [V gifale95/eeg_encoding source_to_raw.py]). The stim
channel becomes ``events.tsv`` (one row per onset: the image shown, or a ``catch`` row for a target); channel
positions come from the standard EasyCap M1 (10-10) montage (the cap's own digitisation is not published [S]).
:func:`write_dataset_files` adds the dataset-level files once every recording is written.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np
import pandas as pd
from mne_bids import make_dataset_description, update_sidecar_json, write_raw_bids

from megdecode import __version__ as MEGDECODE_VERSION
from megdecode.artifacts.paths import bids_eeg_files, bids_eeg_path
from megdecode.datasets.things_eeg2 import BIDS_TASKS, RawSession, ThingsEeg2Settings
from megdecode.io import atomic_output, write_json, write_tsv

log = logging.getLogger(__name__)

EVENTS_COLUMNS = ["onset", "duration", "trial_type", "value", "sample", "image_number", "image_id", "concept"]
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
    eeg = [i for i, t in enumerate(session.ch_types) if t == "eeg"]
    info = mne.create_info([session.ch_names[i] for i in eeg], session.sfreq, "eeg")
    raw = mne.io.RawArray(session.data[eeg], info, verbose="error")
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


def write_dataset_files(bids_root: Path | str, subjects: Sequence[str], authors: Sequence[str]) -> None:
    """Dataset description, README and the tasks' ``events.json``, once every recording is written."""
    root = Path(bids_root)
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
