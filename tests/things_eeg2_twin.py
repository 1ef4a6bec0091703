"""A tiny THINGS-EEG2 written in the published formats (never the real data): raw ``.npy`` dicts per subject,
session and partition, ``image_metadata.npy``, rapid serial presentation at 200 ms with targets (the
package's writers, :mod:`megdecode.simulate.things_eeg2`).

Each image evokes a planted response: its own random spatial pattern (seeded by its file name, so it is a
property of the image, not of the trial) times a Gaussian time course peaking ``LATENCY_S`` after onset. A
reader that pairs trials and images correctly sees that pattern at that latency; one that is off by a trial
does not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from megdecode.config import section_defaults
from megdecode.datasets.things_eeg2 import ThingsEeg2Settings, settings_from_config
from megdecode.preprocessing.eeg import EegRecipe
from megdecode.simulate.things_eeg2 import (
    raw_content,
    recording,
    rsvp_codes,
    rsvp_onsets,
    write_image_metadata,
    write_raw,
)

CH_NAMES = ["Fp1", "Fz", "Cz", "C3", "O1", "Oz", "O2", "PO7", "PO3", "POz", "Pz", "P3", "P4", "stim"]
SFREQ = 1000
LATENCY_S, WIDTH_S = 0.15, 0.03
SOA_S = 0.2
SEQUENCE = 10  # images per rapid sequence (20 in the dataset)
GAP_S = 1.5  # between sequences
AMPLITUDE, NOISE = 1e-5, 2e-6  # volts


@dataclass(frozen=True)
class Twin:
    root: Path
    settings: ThingsEeg2Settings
    train_files: list[str]
    test_files: list[str]

    def pattern(self, file: str) -> np.ndarray:
        return image_pattern(file)


def image_pattern(file: str) -> np.ndarray:
    """The planted spatial pattern of one image over the EEG channels (unit norm)."""
    seed = int.from_bytes(hashlib.sha256(file.encode()).digest()[:8], "little")
    pattern = np.random.default_rng(seed).normal(size=len(CH_NAMES) - 1)
    return pattern / np.linalg.norm(pattern)


def _metadata(n_train_concepts: int, per_concept: int, n_test: int) -> dict[str, list[str]]:
    train_concepts, train_files = [], []
    for c in range(n_train_concepts):
        name = f"thing{c:02d}"
        for e in range(per_concept):
            train_concepts.append(f"{c + 1:05d}_{name}")
            train_files.append(f"{name}_{e + 1:02d}b.jpg")
    test_concepts = [f"{n_train_concepts + k + 1:05d}_other{k:02d}" for k in range(n_test)]
    test_files = [f"other{k:02d}_01s.jpg" for k in range(n_test)]
    return {
        "train_img_concepts": train_concepts,
        "train_img_files": train_files,
        "test_img_concepts": test_concepts,
        "test_img_files": test_files,
    }


def _recording(files: list[str], per_session: int, n_targets: int, rng: np.random.Generator) -> np.ndarray:
    """(channels + stim, samples) of one partition: images in random order, ``per_session`` times each."""
    codes = rsvp_codes(len(files), per_session, n_targets, 99999, rng)
    onsets = rsvp_onsets(len(codes), SOA_S, SEQUENCE, GAP_S, SFREQ)
    n_samples = onsets[-1] + SFREQ + 500
    eeg = rng.normal(scale=NOISE, size=(len(CH_NAMES) - 1, n_samples))
    kernel_t = np.arange(0, 0.4, 1 / SFREQ)
    kernel = AMPLITUDE * np.exp(-0.5 * ((kernel_t - LATENCY_S) / WIDTH_S) ** 2)
    patterns = {k + 1: image_pattern(f) for k, f in enumerate(files)} | {
        99999: image_pattern("buzz_lightyear.jpg")
    }
    return recording(eeg, onsets, codes, {code: p[:, None] * kernel[None, :] for code, p in patterns.items()})


def write_twin(
    root: Path,
    subjects: tuple[str, ...] = ("01",),
    sessions: tuple[str, ...] = ("01", "02"),
    n_train_concepts: int = 4,
    per_concept: int = 2,
    n_test: int = 3,
    train_per_session: int = 2,
    test_per_session: int = 5,
    seed: int = 0,
) -> Twin:
    """Write the twin under ``root`` (``eeg_dataset/raw_data``, ``image_set/image_metadata.npy``)."""
    metadata = _metadata(n_train_concepts, per_concept, n_test)
    write_image_metadata(root / "image_set" / "image_metadata.npy", metadata)
    rng = np.random.default_rng(seed)
    for subject in subjects:
        for session in sessions:
            folder = root / "eeg_dataset" / "raw_data" / f"sub-{subject}" / f"ses-{session}"
            for partition, files, per_session, targets in (
                ("training", metadata["train_img_files"], train_per_session, 2),
                ("test", metadata["test_img_files"], test_per_session, 1),
            ):
                data = _recording(files, per_session, targets, rng)
                write_raw(folder / f"raw_eeg_{partition}.npy", raw_content(data, CH_NAMES, SFREQ))
    settings = dataset_settings(
        root=str(root),
        subjects=subjects,
        sessions=sessions,
        n_train_images=n_train_concepts * per_concept,
        n_test_images=n_test,
        train_repetitions=train_per_session * len(sessions),
        test_repetitions=test_per_session * len(sessions),
    )
    return Twin(root, settings, metadata["train_img_files"], metadata["test_img_files"])


def dataset_settings(**changes) -> ThingsEeg2Settings:
    """The schema's ``things_eeg2`` defaults (the real dataset's) with ``changes``."""
    return settings_from_config({**section_defaults("things_eeg2"), **changes})


def recipe(**changes) -> EegRecipe:
    """The schema's recipe (the published one) with ``changes``."""
    return EegRecipe.from_config({**section_defaults("things_eeg2", "preprocessing"), **changes})
