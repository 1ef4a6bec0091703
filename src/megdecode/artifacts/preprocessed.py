"""One subject's preprocessed arrays: ``{R}/preprocessed/sub-{subject}/``.

- ``meg.npy``: float32 (trials, channels, times), robust-scaled and clamped; memory-mappable.
- ``trials.tsv``: row i describes ``meg.npy[i]`` (``TRIAL_COLUMNS``; ``split`` from :mod:`.splits`).
- ``channels.tsv``: ``name``, ``x``, ``y`` (2-D sensor layout in [0, 1]), in ``meg.npy`` channel order.
- ``info.json``: ``sfreq``, ``tmin``, ``n_times``, scaler and preprocessing provenance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode import io
from megdecode.artifacts.splits import ALL_SPLITS

MEG, TRIALS, CHANNELS, INFO = "meg.npy", "trials.tsv", "channels.tsv", "info.json"
FILES = {"meg": MEG, "trials": TRIALS, "channels": CHANNELS, "info": INFO}
TRIAL_COLUMNS = ["subject", "session", "run", "trial_type", "image_id", "concept", "split", "n_averaged"]
REQUIRED_TRIAL_COLUMNS = ("subject", "image_id", "concept", "split")


@dataclass
class SubjectData:
    """One subject's preprocessed arrays (``meg`` is memory-mapped unless loaded)."""

    name: str
    meg: np.ndarray
    trials: pd.DataFrame
    channels: list[str]
    positions: np.ndarray
    info: dict[str, Any]
    path: Path


def subject_files(directory: str) -> dict[str, str]:
    """``{meg, trials, channels, info}`` paths of a subject folder (a pattern may keep ``{subject}``)."""
    return {key: f"{directory}/{name}" for key, name in FILES.items()}


def read_subject(directory: Path | str, name: str | None = None, in_memory_below: int = 0) -> SubjectData:
    """Read and check a subject folder (``meg`` loaded into memory when under ``in_memory_below`` bytes)."""
    path = Path(directory)
    meg = io.load_npy(path / MEG, mmap=True)
    if meg.nbytes <= in_memory_below:
        meg = np.asarray(meg)
    trials = io.read_tsv(path / TRIALS, dtype={"subject": str, "image_id": str, "concept": str})
    channels = io.read_tsv(path / CHANNELS, dtype={"name": str})
    info = io.read_json(path / INFO)
    missing = [c for c in REQUIRED_TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"{path / TRIALS} lacks columns {missing}; rerun preprocessing")
    if meg.ndim != 3 or meg.shape[0] != len(trials) or meg.shape[1] != len(channels):
        raise ValueError(
            f"{path}: meg.npy shape {meg.shape} does not match trials.tsv ({len(trials)} rows) and "
            f"channels.tsv ({len(channels)} rows); rerun preprocessing for this subject"
        )
    pos = channels[["x", "y"]].to_numpy(np.float32)
    if not np.isfinite(pos).all():
        raise ValueError(f"{path / CHANNELS} has missing sensor positions (x, y)")
    unknown = sorted(set(trials["split"]) - set(ALL_SPLITS))
    if unknown:
        raise ValueError(f"{path / TRIALS}: unknown split values {unknown}")
    subject = name or (str(trials["subject"].iloc[0]) if len(trials) else path.name)
    return SubjectData(subject, meg, trials, channels["name"].astype(str).tolist(), pos, info, path)


def non_finite_trials_message(directory: Path | str, n_bad: int, split: str) -> str:
    """What to say when ``n_bad`` trials of ``split`` in a subject's ``meg.npy`` hold NaN or inf."""
    return (
        f"{Path(directory) / MEG} holds NaN or infinite values in {n_bad} {split} trial(s). Delete that file "
        "and run the same snakemake command again"
    )


def read_channels(directory: Path | str) -> pd.DataFrame:
    """``channels.tsv`` alone (name, x, y), for figures of the sensor layout."""
    return io.read_tsv(Path(directory) / CHANNELS, dtype={"name": str})


@contextlib.contextmanager
def meg_writer(directory: Path | str, shape: Sequence[int]) -> Iterator[np.ndarray]:
    """A float32 memory map to fill; ``meg.npy`` appears only if the block succeeds."""
    from numpy.lib.format import open_memmap

    with io.atomic_output(Path(directory) / MEG) as tmp:
        meg = open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape))
        yield meg
        meg.flush()
        del meg


def write_tables(
    directory: Path | str,
    trials: pd.DataFrame,
    channel_names: Sequence[str],
    layout_xy: np.ndarray,
    info: Mapping[str, Any],
) -> None:
    """``trials.tsv``, ``channels.tsv`` and ``info.json`` beside ``meg.npy``."""
    directory = Path(directory)
    io.write_tsv(trials[TRIAL_COLUMNS], directory / TRIALS)
    io.write_tsv(
        pd.DataFrame({"name": list(channel_names), "x": layout_xy[:, 0], "y": layout_xy[:, 1]}),
        directory / CHANNELS,
    )
    io.write_json(dict(info), directory / INFO)


def read_trials(directory: Path | str) -> pd.DataFrame:
    """``trials.tsv`` alone (labels as text: ``subject``, ``session``, ``run``, ``image_id``, ``concept``)."""
    path = Path(directory) / TRIALS
    labels = {"subject": str, "session": str, "run": str, "image_id": str, "concept": str}
    trials = io.read_tsv(path, dtype=labels)
    missing = [c for c in REQUIRED_TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; rerun preprocessing")
    return trials
