"""THINGS-EEG2 (Gifford et al. 2022, NeuroImage 264:119754; OSF osf.io/3jk45): raw sessions, events, images.

Written against the dataset as published; ``config/things-eeg2.yaml`` tags every value [V] (with its
source) or
[S], and docs/eeg.md lists the sources. Facts this module relies on:

- Raw EEG [V, gifale95/eeg_encoding ``01_eeg_preprocessing/source_to_raw.py``, ``02_eeg_preprocessing/
  preprocessing_utils.py``]: ``<raw_dir>/sub-XX/ses-YY/raw_eeg_training.npy`` and ``raw_eeg_test.npy``, each
  ``np.save`` of a dict ``{raw_eeg_data: (channels, samples), ch_names, ch_types, sfreq: 1000, highpass: 0.01,
  lowpass: 100}``. The last channel is ``stim`` (type ``stim``): 0, except one sample per image onset
  holding the
  image number (1-based, into the partition's images of ``image_metadata.npy``) or 99999 for a target (Buzz
  Lightyear) trial.
- Images [V, consumers of ``image_metadata.npy``]: ``image_metadata.npy`` is a dict with
``train_img_concepts``,
  ``train_img_files``, ``test_img_concepts``, ``test_img_files`` (e.g. ``00001_aardvark`` and
  ``aardvark_01b.jpg``); images under ``training_images/<concept>/<file>`` and
  ``test_images/<concept>/<file>``.
  16,540 training images (1,654 concepts x 10) shown 4 times, 200 test images (200 other concepts x 1)
  shown 80
  times per subject; 10 subjects x 4 sessions; 82,160 trials per subject (Gifford et al. 2022, abstract).
- Rapid serial presentation [V, ``00_data_collection/train/data_collection_train.m``]: 20 images per sequence,
  each 100 ms on screen, onset asynchrony 200 ms: a -0.2 to 0.8 s epoch holds the responses to up to 4
  later and
  1 earlier image of the same sequence.

Every file is read with :func:`megdecode.datasets.safe_npy.read_npy` (no code of a data file ever runs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.config import dataclass_from_section
from megdecode.datasets.safe_npy import read_npy

log = logging.getLogger(__name__)

#: file-name partitions of the raw and preprocessed files, and the BIDS task of each (the source data's
#: ``task-train`` / ``task-test`` [V source_to_raw.py])
PARTITIONS = ("training", "test")
BIDS_TASKS = {"training": "train", "test": "test"}
#: trial types of the trial table (the stimuli contract's roles)
TRIAL_TYPES = {"training": "exp", "test": "test"}
CATCH = "catch"
RAW_KEYS = ("raw_eeg_data", "ch_names", "ch_types", "sfreq")
METADATA_KEYS = {
    "training": ("train_img_concepts", "train_img_files"),
    "test": ("test_img_concepts", "test_img_files"),
}
IMAGE_FOLDERS = {"training": "training_images", "test": "test_images"}
PREPROCESSED_KEYS = ("preprocessed_eeg_data", "ch_names", "times")
SUBSECTIONS = ("preprocessing", "decoding", "simulation")  # the section's keys that are not the dataset's
TRIAL_COLUMNS = [
    "subject",
    "session",
    "partition",
    "trial",
    "sample",
    "onset",
    "code",
    "image_number",
    "image_id",
    "concept",
    "trial_type",
]


class ThingsEeg2DataError(ValueError):
    """THINGS-EEG2 files do not match the published layout or the config; the message names the file and "
    "fix."""


@dataclass(frozen=True)
class ThingsEeg2Settings:
    """The ``things_eeg2`` config section's dataset keys (defaults in ``things_eeg2.schema.yaml`` only)."""

    root: str | None
    raw_dir: str
    preprocessed_dir: str
    images_dir: str
    subjects: tuple[str, ...]
    sessions: tuple[str, ...]
    sfreq: float
    stim_channel: str
    target_code: int
    n_train_images: int
    n_test_images: int
    train_repetitions: int
    test_repetitions: int
    image_duration_s: float
    soa_s: float
    power_line_hz: float
    montage: str

    def n_images(self, partition: str) -> int:
        return self.n_train_images if partition == "training" else self.n_test_images

    def repetitions(self, partition: str) -> int:
        return self.train_repetitions if partition == "training" else self.test_repetitions


def settings_from_config(section: Mapping[str, Any]) -> ThingsEeg2Settings:
    """Settings of a validated ``things_eeg2`` section (its ``preprocessing`` slice is the recipe's;
    ``decoding`` and ``simulation`` belong to the decoders' input and the simulated dataset)."""
    values = {k: v for k, v in section.items() if k not in SUBSECTIONS}
    for key in ("subjects", "sessions"):
        values[key] = tuple(str(v) for v in values.get(key, ()))
    return dataclass_from_section(ThingsEeg2Settings, values, "things_eeg2")


def check_study_subjects(subjects: Sequence[str], settings: ThingsEeg2Settings) -> None:
    """A THINGS-EEG2 study (``study.source: things_eeg2``) decodes subjects the dataset section reads."""
    missing = [s for s in subjects if s not in settings.subjects]
    if missing:
        raise ThingsEeg2DataError(
            f"study.subjects {missing} are not in things_eeg2.subjects {list(settings.subjects)}; add them "
            "there or remove them from study.subjects"
        )


@dataclass(frozen=True)
class ThingsEeg2Layout:
    """Where the published files lie under one local copy."""

    root: Path
    settings: ThingsEeg2Settings

    @classmethod
    def from_settings(cls, settings: ThingsEeg2Settings) -> ThingsEeg2Layout:
        if settings.root is None:
            raise ThingsEeg2DataError(
                "things_eeg2.root is not set: point it at your THINGS-EEG2 copy (config/things-eeg2.yaml)"
            )
        return cls(Path(settings.root), settings)

    def raw(self, subject: str, session: str, partition: str) -> Path:
        _check_partition(partition)
        return (
            self.root
            / self.settings.raw_dir
            / f"sub-{subject}"
            / f"ses-{session}"
            / f"raw_eeg_{partition}.npy"
        )

    def preprocessed(self, subject: str, partition: str) -> Path:
        _check_partition(partition)
        return (
            self.root
            / self.settings.preprocessed_dir
            / f"sub-{subject}"
            / f"preprocessed_eeg_{partition}.npy"
        )

    @property
    def image_metadata(self) -> Path:
        return self.root / self.settings.images_dir / "image_metadata.npy"

    def subject_inputs(self, subject: str) -> list[Path]:
        return [self.raw(subject, s, p) for s in self.settings.sessions for p in PARTITIONS]


def _check_partition(partition: str) -> None:
    if partition not in PARTITIONS:
        raise ThingsEeg2DataError(f"partition {partition!r}: use one of {list(PARTITIONS)}")


# --- raw sessions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawSession:
    """One raw file: EEG channels and the stim channel, as published."""

    data: np.ndarray  # (channels, samples), EEG in volts, the stim channel among them
    ch_names: list[str]
    ch_types: list[str]
    sfreq: float
    highpass: float | None = None
    lowpass: float | None = None
    path: str = ""

    @property
    def eeg_names(self) -> list[str]:
        return [n for n, t in zip(self.ch_names, self.ch_types, strict=True) if t == "eeg"]

    @property
    def eeg(self) -> np.ndarray:
        """The EEG channels only (``eeg_names``), volts."""
        return self.data[[i for i, t in enumerate(self.ch_types) if t == "eeg"]]

    def channel(self, name: str) -> np.ndarray:
        return self.data[self.ch_names.index(name)]


def read_raw_session(path: Path | str, settings: ThingsEeg2Settings) -> RawSession:
    """Read one ``raw_eeg_<partition>.npy`` and check it against the published format and ``settings``."""
    content = read_npy(path)
    fix = "download the file again from OSF (osf.io/3jk45), or check things_eeg2.raw_dir"
    if not isinstance(content, dict):
        raise ThingsEeg2DataError(
            f"{path}: expected a dict of {list(RAW_KEYS)}, found {type(content).__name__}"
        )
    missing = [k for k in RAW_KEYS if k not in content]
    if missing:
        raise ThingsEeg2DataError(f"{path}: missing key(s) {missing} of a THINGS-EEG2 raw file; {fix}")
    data = np.asarray(content["raw_eeg_data"])
    names = [str(n) for n in content["ch_names"]]
    types = [str(t) for t in content["ch_types"]]
    if data.ndim != 2 or not len(names) == len(types) == data.shape[0]:
        raise ThingsEeg2DataError(
            f"{path}: raw_eeg_data {data.shape} does not match {len(names)} ch_names and {len(types)} "
            f"ch_types"
        )
    if not np.issubdtype(data.dtype, np.floating) or not np.isfinite(data).all():
        raise ThingsEeg2DataError(f"{path}: raw_eeg_data must be finite floats ({data.dtype}); {fix}")
    sfreq = float(content["sfreq"])
    if sfreq != settings.sfreq:
        raise ThingsEeg2DataError(
            f"{path}: sampling rate {sfreq:g} Hz, config things_eeg2.sfreq {settings.sfreq:g} Hz; fix the "
            f"config"
        )
    if settings.stim_channel not in names:
        raise ThingsEeg2DataError(
            f"{path}: no stimulus channel {settings.stim_channel!r} among {names[-3:]}...; "
            "set things_eeg2.stim_channel"
        )
    return RawSession(
        data=data,
        ch_names=names,
        ch_types=types,
        sfreq=sfreq,
        highpass=_optional_float(content.get("highpass")),
        lowpass=_optional_float(content.get("lowpass")),
        path=str(path),
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def stim_events(session: RawSession, stim_channel: str = "stim") -> np.ndarray:
    """``(n, 3)`` MNE-style events ``[sample, 0, code]``: every sample where the stim channel turns to a
    nonzero
    code (codes are written on one sample per onset [V source_to_raw.py])."""
    stim = session.channel(stim_channel)
    if not np.all(np.equal(np.mod(stim, 1), 0)):
        raise ThingsEeg2DataError(f"{session.path}: stim channel {stim_channel!r} holds non-integer codes")
    previous = np.concatenate([[0.0], stim[:-1]])
    samples = np.flatnonzero((stim != 0) & (stim != previous))
    codes = stim[samples].astype(np.int64)
    return np.column_stack([samples, np.zeros_like(samples), codes]).astype(np.int64)


# --- images ---------------------------------------------------------------------------------------------


def read_image_metadata(path: Path | str, settings: ThingsEeg2Settings) -> pd.DataFrame:
    """``image_metadata.npy`` as one row per image: ``partition``, ``image_number`` (1-based, the stim code),
    ``image_id`` (file stem), ``concept`` (THINGS name), ``concept_folder``, ``file`` (relative to the
    image set),
    ``role`` and ``concept_split`` (the stimuli contract's)."""
    content = read_npy(path)
    if not isinstance(content, dict):
        raise ThingsEeg2DataError(f"{path}: expected a dict, found {type(content).__name__}")
    frames = []
    for partition, (concept_key, file_key) in METADATA_KEYS.items():
        if concept_key not in content or file_key not in content:
            raise ThingsEeg2DataError(f"{path}: missing {concept_key!r} or {file_key!r}; download it again")
        folders = [str(c) for c in content[concept_key]]
        files = [str(f) for f in content[file_key]]
        expected = settings.n_images(partition)
        if len(folders) != len(files) or len(files) != expected:
            raise ThingsEeg2DataError(
                f"{path}: {len(files)} {partition} files and {len(folders)} concepts, config expects "
                f"{expected} "
                f"(things_eeg2.n_{'train' if partition == 'training' else 'test'}_images)"
            )
        frames.append(
            pd.DataFrame(
                {
                    "partition": partition,
                    "image_number": np.arange(1, len(files) + 1),
                    "image_id": [Path(f).stem for f in files],
                    "concept": [c.split("_", 1)[1] if c[:1].isdigit() and "_" in c else c for c in folders],
                    "concept_folder": folders,
                    "file": [
                        f"{IMAGE_FOLDERS[partition]}/{c}/{f}" for c, f in zip(folders, files, strict=True)
                    ],
                    "role": TRIAL_TYPES[partition],
                    "concept_split": "train" if partition == "training" else "test",
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    duplicated = table["image_id"][table["image_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ThingsEeg2DataError(f"{path}: image files not unique ({duplicated[:5]})")
    shared = set(table.loc[table.partition == "training", "concept"]) & set(
        table.loc[table.partition == "test", "concept"]
    )
    if shared:
        raise ThingsEeg2DataError(f"{path}: test concepts also among training concepts: {sorted(shared)[:5]}")
    return table


# --- trials ---------------------------------------------------------------------------------------------


def session_trials(
    events: np.ndarray,
    images: pd.DataFrame,
    subject: str,
    session: str,
    partition: str,
    sfreq: float,
    target_code: int = 99999,
    source: str = "",
) -> pd.DataFrame:
    """One row per onset of one raw file, in presentation order: the image it showed (``image_number`` = stim
    code, 1-based into the partition's images) or a ``catch`` (target) trial."""
    codes = events[:, 2]
    table = images[images["partition"] == partition].set_index("image_number")
    is_target = codes == target_code
    unknown = sorted(set(codes[~is_target].tolist()) - set(table.index.tolist()))
    if unknown:
        raise ThingsEeg2DataError(
            f"{source}: stim codes {unknown[:5]} are not {partition} image numbers (1..{len(table)}) nor the "
            f"target code {target_code}; check things_eeg2.target_code and n_*_images"
        )
    numbers = np.where(is_target, 0, codes)
    rows = table.reindex(numbers)
    return pd.DataFrame(
        {
            "subject": subject,
            "session": session,
            "partition": partition,
            "trial": np.arange(len(codes)),
            "sample": events[:, 0],
            "onset": events[:, 0] / sfreq,
            "code": codes,
            "image_number": numbers,
            "image_id": rows["image_id"].fillna("n/a").to_numpy(),
            "concept": rows["concept"].fillna("n/a").to_numpy(),
            "trial_type": np.where(is_target, CATCH, TRIAL_TYPES[partition]),
        },
        columns=TRIAL_COLUMNS,
    )


def check_repetitions(trials: pd.DataFrame, settings: ThingsEeg2Settings, subject: str) -> pd.DataFrame:
    """Check that every image of each partition was shown at least its published number of times to
    ``subject`` (over the configured sessions); return the counts (``partition``, ``image_number``,
    ``count``)."""
    shown = trials[trials["trial_type"] != CATCH]
    counts = shown.groupby(["partition", "image_number"]).size().rename("count").reset_index()
    problems = []
    for partition in PARTITIONS:
        mine = counts[counts["partition"] == partition].set_index("image_number")["count"]
        expected = np.arange(1, settings.n_images(partition) + 1)
        per_image = mine.reindex(expected, fill_value=0)
        low = per_image[per_image < settings.repetitions(partition)]
        if len(low):
            problems.append(
                f"{len(low)} {partition} image(s) shown fewer than {settings.repetitions(partition)} times "
                f"(e.g. image {low.index[0]}: {low.iloc[0]})"
            )
    if problems:
        raise ThingsEeg2DataError(
            f"sub-{subject}: {'; '.join(problems)}; every configured session must be present "
            "(things_eeg2.sessions) and the counts must match the published design "
            "(things_eeg2.train_repetitions / test_repetitions)"
        )
    return counts


class ThingsEeg2Reader:
    """:class:`~megdecode.datasets.DatasetReader` of a local THINGS-EEG2 copy."""

    def __init__(self, root: Path | str, settings: ThingsEeg2Settings) -> None:
        self.settings = settings
        self.layout = ThingsEeg2Layout(Path(root), self.settings)
        self._images: pd.DataFrame | None = None

    def inventory(self) -> pd.DataFrame:
        rows = [
            {
                "subject": subject,
                "session": session,
                "partition": partition,
                "path": str(path := self.layout.raw(subject, session, partition)),
                "exists": path.is_file(),
            }
            for subject in self.settings.subjects
            for session in self.settings.sessions
            for partition in PARTITIONS
        ]
        table = pd.DataFrame(rows)
        missing = table.loc[~table["exists"], "path"].tolist()
        if not self.layout.image_metadata.is_file():
            missing.append(str(self.layout.image_metadata))
        if missing:
            raise FileNotFoundError(
                f"THINGS-EEG2 under {self.layout.root}: {len(missing)} file(s) missing: "
                + ", ".join(missing[:5])
                + "; download them from OSF (osf.io/3jk45) or set things_eeg2.root / subjects / sessions"
            )
        return table

    def images(self) -> pd.DataFrame:
        if self._images is None:
            self._images = read_image_metadata(self.layout.image_metadata, self.settings)
        return self._images

    def session(self, subject: str, session: str, partition: str) -> tuple[RawSession, pd.DataFrame]:
        """One raw file and its trial table."""
        path = self.layout.raw(subject, session, partition)
        raw = read_raw_session(path, self.settings)
        events = stim_events(raw, self.settings.stim_channel)
        trials = session_trials(
            events,
            self.images(),
            subject,
            session,
            partition,
            raw.sfreq,
            self.settings.target_code,
            str(path),
        )
        return raw, trials

    def trials(self, subject: str) -> pd.DataFrame:
        tables = [
            self.session(subject, session, partition)[1]
            for session in self.settings.sessions
            for partition in PARTITIONS
        ]
        table = pd.concat(tables, ignore_index=True)
        check_repetitions(table, self.settings, subject)
        return table

    def stimuli_table(self) -> pd.DataFrame:
        images = self.images()
        return images[
            ["image_id", "file", "concept", "role", "concept_split", "partition", "image_number"]
        ].assign(exemplar=1)


def read_preprocessed(path: Path | str) -> dict[str, Any]:
    """A published ``preprocessed_eeg_<partition>.npy``: ``preprocessed_eeg_data`` (images x repetitions x
    channels x times), ``ch_names`` and ``times`` [V preprocessing_utils.save_prepr]."""
    content = read_npy(path)
    if not isinstance(content, dict) or any(k not in content for k in PREPROCESSED_KEYS):
        raise ThingsEeg2DataError(
            f"{path}: expected a dict with {list(PREPROCESSED_KEYS)}; download it again"
        )
    data = np.asarray(content["preprocessed_eeg_data"])
    if data.ndim != 4:
        raise ThingsEeg2DataError(f"{path}: preprocessed_eeg_data has shape {data.shape}, expected 4 axes")
    return {
        "data": data,
        "ch_names": [str(c) for c in content["ch_names"]],
        "times": np.asarray(content["times"]),
    }
