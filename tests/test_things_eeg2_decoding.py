"""THINGS-EEG2 as the decoders' input: the converter's splits, averaging and channels; the simulated copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake
from things_eeg2_twin import write_twin

from megdecode.artifacts.eeg import EegPartition
from megdecode.artifacts.preprocessed import read_subject, read_trials
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, TRAIN, VAL, check_no_leakage
from megdecode.config import load_config, load_yaml, merge_configs, section_defaults, validate_config
from megdecode.datasets.things_eeg2 import ThingsEeg2Reader, read_image_metadata, settings_from_config
from megdecode.preprocessing.eeg_decoding import (
    EegDecodingSettings,
    ScalingSettings,
    montage_layout,
    write_decoder_input,
)
from megdecode.simulate import things_eeg2 as sim

CHANNELS = ["O1", "Oz", "O2", "PO7", "PO3", "POz", "Pz", "P3", "P4"]
REPO = Path(__file__).resolve().parents[1]


def _partitions(images: pd.DataFrame, train_reps: int, test_reps: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    times = -0.2 + np.arange(100) / 100
    parts = []
    for partition, reps in (("training", train_reps), ("test", test_reps)):
        n = int((images["partition"] == partition).sum())
        eeg = rng.normal(size=(n, reps, len(CHANNELS), len(times))).astype(np.float32)
        parts.append(EegPartition(eeg, np.arange(1, n + 1), list(CHANNELS), times))
    return tuple(parts)


def _convert(tmp_path: Path, validation: str = "trials", average: bool = False, clamp: float = 1e6):
    twin = write_twin(tmp_path / "things-eeg2", n_train_concepts=10, per_concept=3, n_test=4)
    images = read_image_metadata(twin.root / "image_set" / "image_metadata.npy", twin.settings)
    training, test = _partitions(images, train_reps=4, test_reps=10)
    scaling = ScalingSettings.from_config({**section_defaults("preprocessing"), "clamp": clamp})
    out = tmp_path / "sub-01"
    write_decoder_input(
        training, test, images, "01", out, ("01", "02"), EegDecodingSettings(average), scaling,
        validation, 0, "easycap-M1", {"tmin": -0.2},
    )  # fmt: skip
    return read_subject(out), training, test, images


def test_converter_rows_splits_and_no_leakage(tmp_path: Path) -> None:
    data, training, test, images = _convert(tmp_path)
    trials = data.trials
    counts = trials["split"].value_counts().to_dict()
    assert counts[TEST_SMALL] == 4 and counts[TEST_LARGE] == 40  # 4 test images; 10 single trials each
    assert counts[TRAIN] + counts[VAL] == 30 * 4  # every training repetition a trial
    assert data.meg.shape == (len(trials), len(CHANNELS), 100) and data.meg.dtype == np.float32
    test_ids = set(images.loc[images["partition"] == "test", "image_id"])
    fit = trials[trials["split"].isin([TRAIN, VAL])]
    assert set(trials.loc[trials["split"].isin([TEST_SMALL, TEST_LARGE]), "image_id"]) == test_ids
    assert not set(fit["image_id"]) & test_ids and not set(fit["concept"]) & set(
        trials.loc[trials["split"] == TEST_SMALL, "concept"]
    )
    check_no_leakage(trials, "converted", "trials")
    # validation images keep every repetition: no image is in both train and val
    assert not set(trials.loc[trials["split"] == TRAIN, "image_id"]) & set(
        trials.loc[trials["split"] == VAL, "image_id"]
    )
    assert trials.loc[trials["split"] == TEST_SMALL, "n_averaged"].eq(10).all()
    assert trials.loc[trials["split"] != TEST_SMALL, "n_averaged"].eq(1).all()
    labels = read_trials(data.path)  # session labels as text
    assert set(labels.loc[labels["split"] == TRAIN, "session"]) == {"01", "02"}
    assert data.info["sfreq"] == pytest.approx(100) and data.info["tmin"] == pytest.approx(-0.2)


def test_converter_averages_test_repetitions_and_scales_on_train_rows(tmp_path: Path) -> None:
    data, training, test, images = _convert(tmp_path)
    trials, info = data.trials, data.info
    center, scale = np.array(info["scaler"]["center"]), np.array(info["scaler"]["scale"])
    raw = np.asarray(data.meg) * scale[None, :, None] + center[None, :, None]  # no clamp reached
    test_ids = images.loc[images["partition"] == "test", "image_id"].tolist()
    for k, image_id in enumerate(test_ids):
        small = np.flatnonzero((trials["split"] == TEST_SMALL) & (trials["image_id"] == image_id))
        large = np.flatnonzero((trials["split"] == TEST_LARGE) & (trials["image_id"] == image_id))
        np.testing.assert_allclose(raw[small[0]], test.eeg[k].mean(axis=0), atol=1e-4)
        np.testing.assert_allclose(raw[large], test.eeg[k], atol=1e-4)
    train_rows = trials["split"] == TRAIN
    fitted = np.median(np.asarray(data.meg)[train_rows.to_numpy()], axis=(0, 2))
    np.testing.assert_allclose(fitted, 0, atol=1e-3)  # the scaler's centre is the train rows' median


def test_converter_averaged_training_and_concept_validation(tmp_path: Path) -> None:
    data, training, *_ = _convert(tmp_path, validation="concepts", average=True)
    trials = data.trials
    fit = trials[trials["split"].isin([TRAIN, VAL])]
    assert len(fit) == 30 and fit["n_averaged"].eq(4).all() and fit["image_id"].is_unique
    assert not set(fit.loc[fit["split"] == TRAIN, "concept"]) & set(fit.loc[fit["split"] == VAL, "concept"])
    assert (fit["split"] == VAL).any()
    check_no_leakage(trials, "converted", "concepts")


def test_channel_positions_follow_the_montage(tmp_path: Path) -> None:
    data, *_ = _convert(tmp_path)
    pos = dict(zip(data.channels, data.positions, strict=True))
    assert data.channels == CHANNELS
    assert (
        np.all((data.positions >= 0) & (data.positions <= 1)) and len(np.unique(data.positions, axis=0)) == 9
    )
    assert pos["O1"][0] < pos["Oz"][0] < pos["O2"][0]  # left to right
    assert pos["Oz"][1] < pos["POz"][1] < pos["Pz"][1]  # back to front
    with pytest.raises(ValueError, match="not in the easycap-M1 montage"):
        montage_layout(["O1", "Oz", "O2", "NotAnElectrode"], "easycap-M1")


def test_eeg_demo_config_is_a_simulated_things_eeg2_study() -> None:
    config = load_config(REPO / "config.yaml", REPO / "config" / "eeg-demo.yaml")
    assert config["study"]["source"] == "things_eeg2" and config["things_eeg2"]["simulation"]["enabled"]
    assert "attributes" in config["backbones"]  # laid over config.yaml: the simulated study's backbones
    section = sim.dataset_section(config)
    assert section["root"] == f"{config['results_dir']}/things_eeg2/simulated"
    assert section["n_train_images"] == 24 * 6 and section["n_test_images"] == 12
    assert section["train_repetitions"] == 4 and section["test_repetitions"] == 10


def test_unknown_source_key_is_rejected() -> None:
    from megdecode.config import ConfigError

    config = merge_configs(
        load_config(REPO / "config.yaml", REPO / "config" / "eeg-demo.yaml"),
        {"things_eeg2": {"decoding": {"average": True}}},
    )
    with pytest.raises(ConfigError):
        validate_config(config)


def test_simulated_dataset_is_read_in_the_published_layout(tmp_path: Path) -> None:
    config = load_config(REPO / "config.yaml", REPO / "config" / "eeg-demo.yaml")
    config["results_dir"] = str(tmp_path)
    config["things_eeg2"]["subjects"] = ["01"]
    section = sim.dataset_section(config)
    shown = sim.write_image_set(Path(section["root"]) / "image_set", config["simulation"], config["seed"])
    sim.write_subject(section["root"], section, config["simulation"], config["eeg"]["simulation"], 0, "01")
    settings = settings_from_config(section)
    reader = ThingsEeg2Reader(section["root"], settings)
    reader.inventory()
    trials = reader.trials("01")  # counts checked against the section
    assert set(trials["trial_type"]) == {"exp", "test", "catch"}
    stimuli = reader.stimuli_table()
    assert len(stimuli) == len(shown) == 24 * 6 + 12
    assert all((Path(section["root"]) / "image_set" / f).is_file() for f in stimuli["file"])
    attrs = sim.study_attributes(config["simulation"], config["seed"])
    assert set(attrs["image_id"]) == set(stimuli["image_id"])
    raw, _ = reader.session("01", "01", "test")
    assert raw.eeg.shape[0] == 63 and raw.sfreq == 1000
    # the same seed writes the same file
    again = tmp_path / "again"
    sim.write_subject(again, section, config["simulation"], config["eeg"]["simulation"], 0, "01")
    first = reader.layout.raw("01", "01", "test")
    assert first.read_bytes() == (again / first.relative_to(section["root"])).read_bytes()


@pytest.mark.slow
def test_eeg_demo_runs_end_to_end(tmp_path: Path) -> None:
    """config/eeg-demo.yaml, shorter training: simulated THINGS-EEG2 -> BIDS-EEG -> recipe -> decoders."""

    overlay = merge_configs(
        load_yaml(REPO / "config" / "eeg-demo.yaml"),
        {"training": {"max_epochs": 8}, "reconstruction": {"decoder": {"epochs": 10}}},
    )
    configfile = tmp_path / "eeg-demo.yaml"
    configfile.write_text(yaml.safe_dump(overlay, sort_keys=False))
    results = tmp_path / "results"
    run_snakemake(results, "all", configfile=configfile, timeout=1500)

    assert (results / "things_eeg2" / "bids" / "dataset_description.json").is_file()
    for subject in ("01", "02"):
        data = read_subject(results / "preprocessed" / f"sub-{subject}")
        assert data.meg.shape[1:] == (17, 100)  # the recipe's 17 occipital and parietal channels, 100 Hz
        assert set(data.trials["split"]) == {TRAIN, VAL, TEST_SMALL, TEST_LARGE}
        check_no_leakage(data.trials, f"sub-{subject}", "trials")
    long = pd.read_csv(results / "tables" / "results_long.tsv", sep="\t")
    assert {"test_small", "test_large"} <= set(long["test_set"]) and {"brain", "ridge"} <= set(long["model"])
    assert (results / "tables" / "table1.md").is_file() and (results / "figures" / "retrieval.png").is_file()
    assert (results / "reconstruction" / "summary.md").is_file()
    assert not (results / "qc").exists() and not (results / "realtime").exists()  # no MEG-only stage ran
    assert "Nothing to be done" in run_snakemake(results, "all", "-n", configfile=configfile).stdout


def test_study_subjects_must_be_read_by_the_dataset_section() -> None:
    from megdecode.datasets.things_eeg2 import ThingsEeg2DataError, check_study_subjects

    settings = settings_from_config({**section_defaults("things_eeg2"), "subjects": ["01", "02"]})
    check_study_subjects(["02"], settings)
    with pytest.raises(ThingsEeg2DataError, match=r"study.subjects \['03'\] are not in things_eeg2.subjects"):
        check_study_subjects(["01", "03"], settings)
