"""THINGS-EEG2: the safe .npy reader, the dataset reader, BIDS-EEG and the EEG recipe, on a tiny twin
written in
the published formats (tests/things_eeg2_twin.py); the real dataset only where it is present."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
from things_eeg2_twin import LATENCY_S, SOA_S, dataset_settings, image_pattern, recipe, write_twin

from megdecode.bids_eeg import convert_recording, write_dataset_files
from megdecode.config import load_config, section_defaults
from megdecode.datasets import DatasetReader
from megdecode.datasets.safe_npy import UnsafePickleError, read_npy
from megdecode.datasets.things_eeg2 import (
    ThingsEeg2DataError,
    ThingsEeg2Reader,
    read_preprocessed,
    read_raw_session,
    settings_from_config,
)
from megdecode.preprocessing.eeg import (
    EegRecipe,
    apply_whitener,
    epoch_session,
    preprocess_session,
    preprocess_subject,
    shrunk_covariance,
    whitener,
)

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = Path(sys.executable).with_name("bids-validator-deno")
#: the real dataset: $THINGS_EEG2_ROOT, else ../shared/things-eeg2 beside the clone
REAL = Path(os.environ.get("THINGS_EEG2_ROOT", REPO.parent / "shared" / "things-eeg2"))
needs_real = pytest.mark.skipif(
    not (REAL / "eeg_dataset" / "raw_data" / "sub-01").is_dir(), reason=f"THINGS-EEG2 not present: {REAL}"
)


# --- the restricted unpickler ---------------------------------------------------------------------------


class _RunsCode:
    """Pickles as a call of ``os.system`` (what a malicious data file would hold)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_a_dict_of_arrays_round_trips(tmp_path: Path) -> None:
    content = {
        "raw_eeg_data": np.arange(12.0).reshape(3, 4),
        "ch_names": ["O1", "Pz", "stim"],
        "sfreq": 1000,
        "highpass": 0.01,
        "files": np.array(["a_01b.jpg", "b_02s.jpg"]),
        "scalar": np.float32(2.5),
        "nested": {"t": (1, 2), "s": {3}},
    }
    np.save(tmp_path / "x.npy", content)
    out = read_npy(tmp_path / "x.npy")
    assert out.keys() == content.keys()
    np.testing.assert_array_equal(out["raw_eeg_data"], content["raw_eeg_data"])
    assert out["files"].tolist() == ["a_01b.jpg", "b_02s.jpg"] and out["scalar"] == np.float32(2.5)
    assert out["nested"] == {"t": (1, 2), "s": {3}} and out["ch_names"] == ["O1", "Pz", "stim"]
    np.save(tmp_path / "plain.npy", np.eye(2))  # a plain array goes through np.load(allow_pickle=False)
    np.testing.assert_array_equal(read_npy(tmp_path / "plain.npy"), np.eye(2))


@pytest.mark.parametrize("payload", ["os.system", "eval"])
def test_a_pickle_naming_code_is_refused_and_never_runs(tmp_path: Path, payload: str) -> None:
    sentinel = tmp_path / "payload_ran"
    evil = _RunsCode(f"touch {sentinel}") if payload == "os.system" else _CallsEval()
    path = tmp_path / "raw_eeg_training.npy"
    np.save(path, np.array({"raw_eeg_data": np.zeros(2), "x": evil}, dtype=object), allow_pickle=True)
    with pytest.raises(
        UnsafePickleError, match=r"raw_eeg_training\.npy.*refused global (posix\.system|builtins\.eval)"
    ):
        read_npy(path)
    assert not sentinel.exists()
    if payload == "os.system":  # the sentinel would appear if the payload ran (the check can fail)
        np.load(path, allow_pickle=True)
        assert sentinel.exists()


def test_a_truncated_or_foreign_file_is_named(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", {"a": np.arange(100)})
    (tmp_path / "cut.npy").write_bytes((tmp_path / "d.npy").read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"cut\.npy: corrupt"):
        read_npy(tmp_path / "cut.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(ValueError, match=r"text\.npy: not a NumPy"):
        read_npy(tmp_path / "text.npy")


# --- the reader on the twin -----------------------------------------------------------------------------


def test_reader_pairs_every_onset_with_its_image(tmp_path: Path) -> None:
    twin = write_twin(tmp_path / "things-eeg2")
    reader = ThingsEeg2Reader(twin.root, twin.settings)
    assert isinstance(reader, DatasetReader)
    assert reader.inventory()["exists"].all()
    trials = reader.trials("01")
    # 8 training images x 2 per session + 2 targets, 3 test images x 5 + 1 target; 2 sessions
    assert len(trials) == 2 * (8 * 2 + 2 + 3 * 5 + 1)
    assert (trials.groupby("trial_type").size() == pd.Series({"catch": 6, "exp": 32, "test": 30})).all()
    raw, session = reader.session("01", "02", "training")
    stim = raw.channel("stim")
    np.testing.assert_array_equal(stim[session["sample"]], session["code"])  # every onset, in order
    assert np.count_nonzero(stim) == len(session)
    images = reader.images().set_index("image_id")
    shown = session[session["trial_type"] == "exp"]
    # the stim code is the 1-based row of the partition's images: code 1 is the first training file
    assert images.loc[shown["image_id"], "image_number"].tolist() == shown["code"].tolist()
    assert images.loc["thing00_01b", "file"] == "training_images/00001_thing00/thing00_01b.jpg"
    assert images.loc["thing00_01b", "concept"] == "thing00"
    stimuli = reader.stimuli_table()
    assert set(stimuli.loc[stimuli.role == "test", "concept_split"]) == {"test"}
    assert len(stimuli) == 11 and stimuli["image_id"].is_unique


def test_reader_names_a_missing_session_and_too_few_repetitions(tmp_path: Path) -> None:
    twin = write_twin(tmp_path / "d")
    (twin.root / "eeg_dataset/raw_data/sub-01/ses-02/raw_eeg_test.npy").unlink()
    reader = ThingsEeg2Reader(twin.root, twin.settings)
    with pytest.raises(FileNotFoundError, match=r"ses-02/raw_eeg_test\.npy.*things_eeg2\.root"):
        reader.inventory()
    one_session = dataclasses.replace(twin.settings, sessions=("01",))
    with pytest.raises(ThingsEeg2DataError, match="shown fewer than 4 times"):
        ThingsEeg2Reader(twin.root, one_session).trials("01")


def test_reader_refuses_a_wrong_rate_and_unknown_codes(tmp_path: Path) -> None:
    twin = write_twin(tmp_path / "d")
    path = twin.root / "eeg_dataset/raw_data/sub-01/ses-01/raw_eeg_training.npy"
    with pytest.raises(ThingsEeg2DataError, match=r"raw_eeg_training\.npy: sampling rate 1000 Hz.*500"):
        read_raw_session(path, dataclasses.replace(twin.settings, sfreq=500))
    fewer = dataclasses.replace(twin.settings, n_train_images=6)
    with pytest.raises(ThingsEeg2DataError, match="image_metadata.npy: 8 training files"):
        ThingsEeg2Reader(twin.root, fewer).trials("01")


# --- alignment: a planted per-image code, and the same reader one trial off ------------------------------


def _identification(
    epochs: np.ndarray, times: np.ndarray, labels: list[str], candidates: list[str]
) -> np.ndarray:
    """Top-1 accuracy over time of picking each epoch's image among ``candidates`` by the planted pattern."""
    patterns = np.stack([image_pattern(f"{c}.jpg") for c in candidates])  # (images, channels)
    scores = np.einsum("ect,ic->eit", epochs, patterns)
    truth = np.array([candidates.index(label) for label in labels])
    return (scores.argmax(axis=1) == truth[:, None]).mean(axis=0)


def _session_epochs(
    reader: ThingsEeg2Reader, session: str, shift: int
) -> tuple[np.ndarray, np.ndarray, list]:
    raw, trials = reader.session("01", session, "training")
    shown = trials[trials["trial_type"] == "exp"]
    labels = shown["image_id"].tolist()
    labels = labels[shift:] + labels[:shift]  # the misaligned reader: trial i gets image i + shift
    every_channel = recipe(channel_regex=".", resample_hz=1000)
    eeg = raw.eeg
    epochs = epoch_session(eeg, raw.eeg_names, raw.sfreq, shown["sample"].to_numpy(), every_channel)
    return epochs.data, epochs.times, [labels[i] for i in epochs.event_index]


def test_planted_image_code_is_decoded_aligned_and_lost_one_trial_off(tmp_path: Path) -> None:
    """The reader's trial-image pairing recovers each image's planted code at its latency; shifting the
    pairing
    by one trial drops it to chance there, and (rapid presentation) moves it one onset asynchrony later."""
    twin = write_twin(tmp_path / "d", n_train_concepts=8, per_concept=2)
    reader = ThingsEeg2Reader(twin.root, twin.settings)
    candidates = [Path(f).stem for f in twin.train_files]
    chance = 1 / len(candidates)
    at = {}
    for shift in (0, 1):
        parts = [_session_epochs(reader, s, shift) for s in twin.settings.sessions]
        epochs = np.concatenate([p[0] for p in parts])
        times, labels = parts[0][1], sum((p[2] for p in parts), [])
        accuracy = _identification(epochs, times, labels, candidates)
        latency = int(np.argmin(np.abs(times - LATENCY_S)))
        at[shift] = (accuracy[latency], times[np.argmax(accuracy)])
    assert at[0][0] >= 0.9 and abs(at[0][1] - LATENCY_S) <= 0.02
    assert at[1][0] <= chance + 0.15
    assert abs(at[1][1] - (LATENCY_S + SOA_S)) <= 0.02  # the next image's response, one SOA later


# --- the recipe against the MNE chain -------------------------------------------------------------------


def _mne_chain(raw_session, chain: EegRecipe) -> mne.Epochs:
    """The published recipe, step by step with MNE (as gifale95/eeg_encoding preprocessing_utils.epoching)."""
    info = mne.create_info(raw_session.ch_names, raw_session.sfreq, raw_session.ch_types)
    raw = mne.io.RawArray(raw_session.data, info, verbose="error")
    if chain.average_reference:
        raw.set_eeg_reference("average", projection=False, verbose="error")
    events = mne.find_events(raw, stim_channel="stim", verbose="error")
    raw.pick(mne.pick_channels_regexp(raw.ch_names, chain.channel_regex))
    events = events[events[:, 2] != 99999]
    epochs = mne.Epochs(raw, events, tmin=-0.2, tmax=0.8, baseline=(None, 0), preload=True, verbose="error")
    return epochs.resample(chain.resample_hz, verbose="error")


@pytest.mark.parametrize("average_reference", [False, True])
def test_recipe_equals_the_mne_chain(tmp_path: Path, average_reference: bool) -> None:
    twin = write_twin(tmp_path / "d")
    reader = ThingsEeg2Reader(twin.root, twin.settings)
    raw, trials = reader.session("01", "01", "test")
    chain = recipe(average_reference=average_reference, mvnn="none", max_repetitions_test=99)
    expected = _mne_chain(raw, chain)
    eeg = raw.eeg
    got = preprocess_session(
        {
            "test": (
                eeg,
                raw.eeg_names,
                raw.sfreq,
                trials["sample"].to_numpy(),
                trials["image_number"].to_numpy(),
            )
        },
        chain,
    )["test"]
    assert got.ch_names == expected.ch_names == ["O1", "Oz", "O2", "PO7", "PO3", "POz", "Pz", "P3", "P4"]
    np.testing.assert_allclose(got.times, expected.times, atol=1e-12)
    assert got.data.shape == (15, 9, 100)
    np.testing.assert_allclose(got.data, expected.get_data(), rtol=0, atol=1e-12 * np.abs(got.data).max())
    np.testing.assert_array_equal(got.image_numbers, expected.events[:, 2])


def test_shrunk_covariance_equals_sklearns_recipe() -> None:
    from sklearn.discriminant_analysis import _cov  # the function the published recipe calls

    rng = np.random.default_rng(1)
    batch = rng.normal(size=(5, 4, 6)) * np.arange(1, 7)  # 5 draws of 4 samples x 6 channels
    ours = shrunk_covariance(batch)
    for draw, cov in zip(batch, ours, strict=True):
        np.testing.assert_allclose(cov, _cov(draw, shrinkage="auto"), rtol=1e-10, atol=1e-12)


def test_mvnn_whitens_the_noise_and_keeps_the_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    mixing = np.diag([1.0, 2, 4, 8, 16]) @ (np.eye(5) + 0.3 * rng.normal(size=(5, 5)))  # scaled, correlated
    numbers = np.repeat(np.arange(1, 11), 40)  # 40 repetitions: little shrinkage
    noise = np.einsum("cd,edt->ect", mixing, rng.normal(size=(len(numbers), 5, 20)))
    matrix = whitener([(noise, numbers)], over="time")
    white = apply_whitener(noise, matrix)
    cov = np.einsum("ect,edt->cd", white, white) / (white.shape[0] * white.shape[2])
    before = np.cov(noise.transpose(1, 0, 2).reshape(5, -1))
    # measured: 193 before, 2.6 after (shrinkage towards the identity leaves a little of the spread)
    assert np.linalg.cond(before) > 100 and np.linalg.cond(cov) < 4
    assert white.shape == noise.shape


def test_subject_arrays_take_the_published_shape(tmp_path: Path) -> None:
    twin = write_twin(tmp_path / "d")
    reader = ThingsEeg2Reader(twin.root, twin.settings)
    out = preprocess_subject(reader, "01", recipe(max_repetitions_training=2, max_repetitions_test=5))
    train, test = out["training"][0], out["test"][0]
    assert train.shape == (8, 4, 9, 100) and test.shape == (3, 10, 9, 100)  # images x reps x 9 O/P x 100
    assert np.isfinite(train).all() and np.isfinite(test).all()
    assert out["test"][1] == ["O1", "Oz", "O2", "PO7", "PO3", "POz", "Pz", "P3", "P4"]


# --- BIDS-EEG -------------------------------------------------------------------------------------------


def _bids(tmp_path: Path) -> tuple[Path, ThingsEeg2Reader]:
    twin = write_twin(tmp_path / "d", sessions=("01",), train_per_session=4, test_per_session=10)
    reader = ThingsEeg2Reader(twin.root, twin.settings)
    root = tmp_path / "bids"
    for partition in ("training", "test"):
        raw, trials = reader.session("01", "01", partition)
        convert_recording(raw, trials, root, "01", "01", partition, twin.settings)
    write_dataset_files(root, ["01"], ["Test Author"])
    return root, reader


def test_bids_round_trip_keeps_data_and_events(tmp_path: Path) -> None:
    from mne_bids import BIDSPath, read_raw_bids

    root, reader = _bids(tmp_path)
    raw, trials = reader.session("01", "01", "training")
    path = BIDSPath(root=root, subject="01", session="01", task="train", datatype="eeg")
    back = read_raw_bids(path, verbose="error")
    eeg = raw.eeg
    np.testing.assert_allclose(back.get_data(), eeg, atol=1e-9)  # float32 BrainVision, microvolts
    assert back.ch_names == raw.eeg_names and back.info["sfreq"] == 1000
    events = pd.read_csv(
        path.copy().update(suffix="events", extension=".tsv").fpath, sep="\t", keep_default_na=False
    )
    assert events["sample"].tolist() == trials["sample"].tolist()
    assert events["image_id"].tolist() == trials["image_id"].tolist()
    assert (events["value"] == 99999).sum() == (events["trial_type"] == "catch").sum() == 2
    assert json.loads((root / "task-train_events.json").read_text())["value"]


@pytest.mark.skipif(not VALIDATOR.exists(), reason="bids-validator-deno not installed (pip install .[test])")
def test_bids_eeg_validator_zero_errors(tmp_path: Path) -> None:
    root, _ = _bids(tmp_path)
    report = validate(root)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [], errors
    assert report["summary"]["subjects"] == ["01"]


def test_config_tags_every_value_and_equals_the_schema_defaults() -> None:
    path = REPO / "config" / "things-eeg2.yaml"
    untagged = [
        line
        for line in path.read_text().splitlines()
        if re.match(r"^\s+\w+:\s*[^\s#]", line) and not re.search(r"\[(V|S)[\] ]", line)
    ]
    assert untagged == [
        "  root: data/things-eeg2  # your copy of the OSF project (placeholder: point it at your download)"
    ]
    section = load_config(path)["things_eeg2"]
    defaults = section_defaults("things_eeg2")
    assert {**section, "root": None} == defaults
    assert settings_from_config(section).subjects == tuple(f"{s:02d}" for s in range(1, 11))


def validate(root: Path) -> dict:
    """The official BIDS validator's JSON report on ``root`` (offline)."""
    proc = subprocess.run(
        [str(VALIDATOR), str(root), "--format", "json"], capture_output=True, text=True, timeout=300
    )
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


# --- the real dataset (skips without it) ----------------------------------------------------------------


@needs_real
def test_real_raw_session_matches_the_published_layout() -> None:
    settings = dataset_settings(root=str(REAL), subjects=["01"])
    reader = ThingsEeg2Reader(REAL, settings)
    raw, trials = reader.session("01", "01", "test")
    assert raw.sfreq == 1000 and raw.ch_names[-1] == "stim" and len(raw.eeg_names) == 63
    assert ((trials["trial_type"] == "test") | (trials["trial_type"] == "catch")).all()
    assert trials.loc[trials["trial_type"] == "test"].groupby("image_number").size().eq(20).all()


@needs_real
def test_real_test_partition_matches_the_published_preprocessing() -> None:
    """Our recipe on sub-01's four sessions against the published preprocessed test data (averaged over the
    80 repetitions, which the published shuffle does not change)."""
    reader = ThingsEeg2Reader(REAL, dataset_settings(root=str(REAL), subjects=["01"]))
    published = read_preprocessed(reader.layout.preprocessed("01", "test"))
    ours, ch_names, times = preprocess_subject(reader, "01", recipe())["test"]
    assert ours.shape == published["data"].shape == (200, 80, 17, 100)
    assert ch_names == published["ch_names"]
    np.testing.assert_allclose(times, published["times"], atol=1e-9)
    r = np.corrcoef(ours.mean(axis=1).ravel(), published["data"].mean(axis=1).ravel())[0, 1]
    assert r > 0.95
