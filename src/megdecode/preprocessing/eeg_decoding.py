"""One THINGS-EEG2 subject's preprocessed partitions as the decoders' input (the preprocessed subject folder).

Rule ``things_eeg2_subject``: the recipe's partitions (:mod:`megdecode.artifacts.eeg`, images x repetitions x
channels x times) become ``meg.npy`` / ``trials.tsv`` / ``channels.tsv`` / ``info.json``
(:mod:`megdecode.artifacts.preprocessed`), so the brain module, ridge, chance, time-resolved decoding and
reconstruction run on EEG unchanged. The rows:

- ``train`` / ``val``: the training images (1,654 training concepts). Each kept repetition is one trial, or
  an image's repetitions are averaged into one row (``things_eeg2.decoding.average_training_repetitions``)
  [S]. Validation is drawn among training images or training concepts only (``training.validation``, the
  fraction ``preprocessing.val_fraction``), as for MEG; every repetition of a validation image is a
  validation row.
- ``test_small``: each test image (200 other concepts), its repetitions averaged (the MEG small test set).
- ``test_large``: each kept test repetition as a single trial of its image (200-way retrieval of single
  trials, as the fMRI contract's ``test_large``; THINGS-EEG2 has no other images of the test concepts).

No test image or concept reaches training or validation
(:func:`~megdecode.artifacts.splits.check_no_leakage`).
The robust scaler and clamp of the MEG pipeline (``preprocessing.scaler_*``, ``clamp``) are fitted on the
train rows. Channel positions: the montage's (``things_eeg2.montage``) 3-D positions of the kept channels,
projected to a 2-D layout in [0, 1] (:func:`~megdecode.preprocessing.assemble.sensor_layout`, as the simulated
EEG study's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts import preprocessed
from megdecode.artifacts.eeg import EegPartition
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, TRAIN, check_no_leakage
from megdecode.config import dataclass_from_section
from megdecode.preprocessing.assemble import apply_scaler, assign_splits, fit_robust_scaler, sensor_layout
from megdecode.seeds import derive_rng

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EegDecodingSettings:
    """The ``things_eeg2.decoding`` section (defaults in ``things_eeg2.schema.yaml``)."""

    average_training_repetitions: bool

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> EegDecodingSettings:
        return dataclass_from_section(cls, dict(section), "things_eeg2.decoding")


@dataclass(frozen=True)
class ScalingSettings:
    """The keys of the ``preprocessing`` section the conversion uses (validation fraction, robust scaler)."""

    val_fraction: float
    scaler_quantiles: tuple[float, float]
    scaler_max_trials: int
    clamp: float

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ScalingSettings:
        return cls(
            val_fraction=float(section["val_fraction"]),
            scaler_quantiles=(float(section["scaler_quantiles"][0]), float(section["scaler_quantiles"][1])),
            scaler_max_trials=int(section["scaler_max_trials"]),
            clamp=float(section["clamp"]),
        )


def montage_layout(ch_names: Sequence[str], montage: str) -> np.ndarray:
    """(channels, 2) layout in [0, 1] of ``ch_names`` from the MNE standard ``montage``'s positions."""
    import mne

    positions = mne.channels.make_standard_montage(montage).get_positions()["ch_pos"]
    missing = [c for c in ch_names if c not in positions]
    if missing:
        raise ValueError(
            f"channels {missing[:5]} are not in the {montage} montage; set things_eeg2.montage to a montage "
            "that names them"
        )
    return sensor_layout(np.array([positions[c] for c in ch_names], float))


def _session_labels(n_repetitions: int, sessions: Sequence[str]) -> list[str]:
    """The session of each repetition (repetitions are stacked session by session, equally many each)."""
    if not sessions or n_repetitions % len(sessions):
        return ["n/a"] * n_repetitions
    per = n_repetitions // len(sessions)
    return [str(sessions[r // per]) for r in range(n_repetitions)]


def _partition_images(part: EegPartition, images: pd.DataFrame, partition: str, where: str) -> pd.DataFrame:
    """The image table rows of ``part``'s images, in its order."""
    table = images[images["partition"] == partition].set_index("image_number")
    numbers = np.asarray(part.image_numbers, dtype=int)
    unknown = sorted(set(numbers.tolist()) - set(table.index.tolist()))
    if unknown:
        raise ValueError(
            f"{where}: {partition} image numbers {unknown[:5]} are not in image_metadata.npy; rerun rule "
            "things_eeg2_preprocess"
        )
    return table.loc[numbers].reset_index()


def decoder_rows(
    training: EegPartition,
    test: EegPartition,
    images: pd.DataFrame,
    subject: str,
    sessions: Sequence[str],
    average_training: bool,
    where: str = "THINGS-EEG2",
) -> pd.DataFrame:
    """One row per output trial, in ``meg.npy`` order (training rows, then ``test_large``, then
    ``test_small``): the trials contract's columns plus ``partition``, ``_image`` (row in its partition) and
    ``_rep`` (repetition, -1 when averaged). Splits are ``train`` / ``test_large`` / ``test_small`` here;
    :func:`assign_validation` draws ``val``."""
    frames = []
    train_images = _partition_images(training, images, "training", where)
    test_images = _partition_images(test, images, "test", where)
    n_train_rep, n_test_rep = training.eeg.shape[1], test.eeg.shape[1]

    def rows(table: pd.DataFrame, partition: str, split: str, reps: int, average: bool, trial_type: str):
        labels = _session_labels(reps, sessions)
        image_idx = np.repeat(np.arange(len(table)), 1 if average else reps)
        rep_idx = np.full(len(image_idx), -1) if average else np.tile(np.arange(reps), len(table))
        return pd.DataFrame(
            {
                "subject": subject,
                "session": ["n/a" if r < 0 else labels[r] for r in rep_idx],
                "run": partition,
                "trial_type": trial_type,
                "image_id": table["image_id"].to_numpy(str)[image_idx],
                "concept": table["concept"].to_numpy(str)[image_idx],
                "split": split,
                "n_averaged": reps if average else 1,
                "partition": partition,
                "_image": image_idx,
                "_rep": rep_idx,
            }
        )

    frames.append(rows(train_images, "training", TRAIN, n_train_rep, average_training, "exp"))
    frames.append(rows(test_images, "test", TEST_LARGE, n_test_rep, False, "test"))
    frames.append(rows(test_images, "test", TEST_SMALL, n_test_rep, True, "test"))
    return pd.concat(frames, ignore_index=True)


def assign_validation(
    rows: pd.DataFrame, val_fraction: float, validation: str, seed: int, subject: str
) -> pd.Series:
    """The splits of :func:`decoder_rows` with ``val`` drawn among the training rows (images for
    ``validation="trials"``, concepts for ``"concepts"``: the same concepts for every subject), by
    :func:`~megdecode.preprocessing.assemble.assign_splits`."""
    train = rows["split"] == TRAIN
    rng = (
        derive_rng(int(seed), subject, "val")
        if validation == "trials"
        else derive_rng(int(seed), "val-concepts")
    )
    fit = rows.loc[train, ["trial_type", "image_id", "concept"]].assign(concept_split="train")
    split = rows["split"].astype(object).copy()
    split[train] = assign_splits(fit, val_fraction, rng, validation).to_numpy()
    return split


def _fill(
    meg: np.ndarray, rows: pd.DataFrame, training: EegPartition, test: EegPartition, block: int = 512
) -> None:
    """Write each row's EEG (a repetition, or the mean over repetitions) into ``meg``, block by block."""
    parts = {"training": training.eeg, "test": test.eeg}
    image, rep, partition = rows["_image"].to_numpy(), rows["_rep"].to_numpy(), rows["partition"].to_numpy()
    for start in range(0, len(rows), block):
        stop = min(start + block, len(rows))
        for name, eeg in parts.items():
            sel = np.flatnonzero(partition[start:stop] == name) + start
            if not len(sel):
                continue
            single = rep[sel] >= 0
            if single.any():
                meg[sel[single]] = eeg[image[sel[single]], rep[sel[single]]]
            if (~single).any():
                meg[sel[~single]] = eeg[image[sel[~single]]].mean(axis=1)


def write_decoder_input(
    training: EegPartition,
    test: EegPartition,
    images: pd.DataFrame,
    subject: str,
    out_dir: Path | str,
    sessions: Sequence[str],
    decoding: EegDecodingSettings,
    scaling: ScalingSettings,
    validation: str,
    seed: int,
    montage: str,
    recipe: Mapping[str, Any],
) -> pd.DataFrame:
    """Write one subject's preprocessed folder (module docstring) and return its trials table."""
    where = f"THINGS-EEG2 sub-{subject}"
    if training.ch_names != test.ch_names or not np.allclose(training.times, test.times):
        raise ValueError(
            f"{where}: the training and test partitions differ in channels or times; rerun rule "
            "things_eeg2_preprocess"
        )
    rows = decoder_rows(
        training, test, images, subject, sessions, decoding.average_training_repetitions, where
    )
    rows["split"] = assign_validation(rows, scaling.val_fraction, validation, seed, subject)
    check_no_leakage(rows, where, validation)
    n_ch, n_t = training.eeg.shape[2], training.eeg.shape[3]
    with preprocessed.meg_writer(out_dir, (len(rows), n_ch, n_t)) as meg:
        _fill(meg, rows, training, test)
        center, scale, used = fit_robust_scaler(
            meg,
            np.flatnonzero(rows["split"].to_numpy() == TRAIN),
            scaling.scaler_quantiles,
            scaling.scaler_max_trials,
            derive_rng(int(seed), subject, "scaler"),
        )
        apply_scaler(meg, center, scale, scaling.clamp)
    times = np.asarray(training.times, float)
    sfreq = float(1.0 / np.median(np.diff(times))) if len(times) > 1 else float("nan")
    table = rows[preprocessed.TRIAL_COLUMNS]
    info = {
        "subject": subject,
        "source": "things_eeg2",
        "sfreq": round(sfreq, 9),
        "tmin": float(times[0]),
        "n_times": int(n_t),
        "n_channels": int(n_ch),
        "shape": [len(rows), int(n_ch), int(n_t)],
        "dtype": "float32",
        "n_rows_per_split": table["split"].value_counts().sort_index().to_dict(),
        "training_repetitions": "averaged" if decoding.average_training_repetitions else "single trials",
        "test_repetitions": int(test.eeg.shape[1]),
        "scaler": {
            "kind": "robust",
            "fit_on": "train",
            "n_fit_trials": int(len(used)),
            "quantiles": list(scaling.scaler_quantiles),
            "clamp": scaling.clamp,
            "center": center.tolist(),
            "scale": scale.tolist(),
        },
        "montage": montage,
        "recipe": dict(recipe),
    }
    preprocessed.write_tables(
        out_dir, table, training.ch_names, montage_layout(training.ch_names, montage), info
    )
    log.info("%s: %d rows (%s)", where, len(table), info["n_rows_per_split"])
    return table


def write_study_subject(
    section: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    validation: str,
    seed: int,
    subject: str,
    inputs: Mapping[str, str],
    out_dir: str,
) -> pd.DataFrame:
    """Rule ``things_eeg2_subject``: read the partitions (``inputs['training']``, ``inputs['test']``) and
    ``image_metadata.npy`` of a validated ``things_eeg2`` ``section`` and write the subject's folder."""
    from megdecode.artifacts.eeg import read_partition
    from megdecode.datasets.things_eeg2 import read_image_metadata, settings_from_config

    settings = settings_from_config(section)
    images = read_image_metadata(inputs["metadata"], settings)
    return write_decoder_input(
        read_partition(inputs["training"]),
        read_partition(inputs["test"]),
        images,
        subject,
        out_dir,
        settings.sessions,
        EegDecodingSettings.from_config(section["decoding"]),
        ScalingSettings.from_config(preprocessing),
        validation,
        seed,
        settings.montage,
        section["preprocessing"],
    )


def write_stimuli_table(
    section: Mapping[str, Any], metadata: str, out: str, attributes: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Rule ``things_eeg2_stimuli``: the stimuli table (``file`` relative to the image set) of every training
    and test image of ``image_metadata.npy``, with ``attributes`` (``image_id`` and attribute columns) joined
    when given."""
    from megdecode.artifacts.stimuli import write_stimuli
    from megdecode.datasets.things_eeg2 import read_image_metadata, settings_from_config

    images = read_image_metadata(metadata, settings_from_config(section))
    table = images[["image_id", "file", "concept", "role", "concept_split", "partition", "image_number"]]
    table = table.assign(exemplar=1)
    if attributes is not None:
        table = table.merge(attributes, on="image_id", how="left", validate="one_to_one")
    write_stimuli(table, out)
    return table
