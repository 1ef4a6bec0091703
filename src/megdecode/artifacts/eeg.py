"""One subject's preprocessed THINGS-EEG2 partition:
``{R}/things_eeg2/preprocessed/sub-{subject}_{partition}.npz``.

Written by rule ``things_eeg2_preprocess`` (:func:`megdecode.preprocessing.eeg.preprocess_subject`); nothing
else opens these files. Arrays (:data:`KEYS`): ``eeg`` float32 (images, repetitions, channels, times), the
published files' shape, image ``k`` (1-based stim code) at row ``k - 1``; ``image_numbers`` (images,);
``ch_names`` (channels,) and ``times`` (times,) in s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from megdecode import io

KEYS = ("eeg", "image_numbers", "ch_names", "times")


@dataclass(frozen=True)
class EegPartition:
    eeg: np.ndarray
    image_numbers: np.ndarray
    ch_names: list[str]
    times: np.ndarray


def write_partition(partition: EegPartition, path: Path | str) -> None:
    if partition.eeg.ndim != 4 or not np.isfinite(partition.eeg).all():
        raise ValueError(
            f"{path}: EEG must be finite (images, repetitions, channels, times), got {partition.eeg.shape}"
        )
    io.save_npz(
        {
            "eeg": partition.eeg.astype(np.float32),
            "image_numbers": np.asarray(partition.image_numbers, dtype=np.int64),
            "ch_names": np.asarray(partition.ch_names, dtype=str),
            "times": np.asarray(partition.times, dtype=np.float64),
        },
        path,
    )


def read_partition(path: Path | str) -> EegPartition:
    arrays = io.load_npz(path)
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing {missing}; rerun rule things_eeg2_preprocess")
    return EegPartition(arrays["eeg"], arrays["image_numbers"], arrays["ch_names"].tolist(), arrays["times"])
