"""The attribute readout (megdecode.reconstruction.attribute_readout) on a small simulated stimulus set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from megdecode.artifacts.attribute_readout import read_accuracy
from megdecode.artifacts.splits import LeakageError
from megdecode.artifacts.stimuli import read_stimuli, train_image_ids
from megdecode.config import ConfigError, section_defaults
from megdecode.io import read_tsv, save_npz
from megdecode.metrics import image as im
from megdecode.plan import attribute_readout_on
from megdecode.reconstruction import score_subjects
from megdecode.reconstruction.attribute_readout import (
    ReadoutOptions,
    build_readout,
    check_readout_images,
    fit_and_write,
    load_readout,
    readout_features,
    readout_images,
)
from megdecode.reconstruction.base import load_images
from megdecode.reporting.modalities import metric_level

PX = 48  # the metric's resolution in these tests


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small simulated stimulus set: 3 shapes x 3 colours x 2 textures, 12 training concepts of 10 images,
    4 held-out test concepts (2 exp images + 1 test image each)."""
    from megdecode.simulate import simulate_stimuli

    cfg = section_defaults("simulation")
    cfg["stimuli"] |= {
        "shapes": ["circle", "square", "cross"],
        "colours": ["red", "green", "blue"],
        "textures": ["solid", "stripes"],
        "n_train_concepts": 12,
        "n_test_concepts": 4,
        "exemplars_per_train_concept": 10,
        "exemplars_per_test_concept": 2,
        "n_catch_images": 1,
    }
    root = tmp_path_factory.mktemp("readout_world")
    simulate_stimuli(root / "stimuli.tsv", root / "images", root / "truth.json", cfg, seed=3)
    return {"table": root / "stimuli.tsv", "images": root / "images", "root": root}


@pytest.fixture(scope="module")
def opts() -> ReadoutOptions:
    return ReadoutOptions.from_config(section_defaults("reconstruction", "metrics", "attribute_readout"))


@pytest.fixture(scope="module")
def fitted(world: dict[str, Path], opts: ReadoutOptions):
    return build_readout(read_stimuli(world["table"]), world["images"], PX, opts, seed=0)


def test_readout_reads_held_out_images_above_chance(world: dict[str, Path], fitted) -> None:
    """Known answer: the attributes of images the fit never saw (held-out training exemplars, and images of
    held-out concepts, whose attribute values all occur in training) are read above chance."""
    readout, accuracy = fitted
    acc = accuracy.set_index("attribute")
    assert list(acc.index) == ["shape", "colour", "texture"]
    assert (acc["split"] == "val").all() and (acc["n_images"] == len(readout.val_ids)).all()
    assert acc.loc["colour", "accuracy"] >= 0.85
    for attribute in ("shape", "texture"):
        assert acc.loc[attribute, "accuracy"] > acc.loc[attribute, "chance"] + 0.25, attribute
    stimuli = read_stimuli(world["table"])
    unseen = stimuli.index[stimuli["concept_split"] == "test"].tolist()
    predicted = readout.predict(readout_features(load_images(stimuli, world["images"], unseen, PX)))
    margins = []  # new attribute combinations are harder than new exemplars of trained ones
    for attribute in ("shape", "colour", "texture"):
        hits = np.mean(predicted[attribute] == stimuli.loc[unseen, attribute].to_numpy())
        margins.append(hits - 1 / len(readout.classes[attribute]))
    assert min(margins) > 0 and np.mean(margins) > 0.2, margins


def test_fit_never_sees_a_test_image(world: dict[str, Path], opts: ReadoutOptions, tmp_path: Path) -> None:
    """The fit and val images are exp images of training concepts; the table's test rows are excluded, and
    a fit still runs when the test images' files are gone (it never reads them)."""
    import shutil

    stimuli = read_stimuli(world["table"])
    fit_ids, val_ids = readout_images(stimuli, opts, seed=0)
    assert sorted(fit_ids + val_ids) == sorted(train_image_ids(stimuli))
    assert not set(fit_ids) & set(val_ids)
    test_rows = stimuli[(stimuli["role"] == "test") | (stimuli["concept_split"] == "test")]
    assert len(test_rows) == 12
    assert not set(fit_ids + val_ids) & set(test_rows.index)
    assert not set(stimuli.loc[fit_ids + val_ids, "concept"]) & set(test_rows["concept"])
    images = tmp_path / "images"
    shutil.copytree(world["images"], images)
    for f in test_rows["file"]:
        (images / f).unlink()
    readout, _ = build_readout(stimuli, images, PX, opts, seed=0)
    assert readout.fit_ids == fit_ids
    # the leakage check itself: a test image or a test concept among the readout's images is an error
    with pytest.raises(LeakageError, match="non-training"):
        check_readout_images(stimuli, [*fit_ids, test_rows.index[0]], "t")
    relabelled = stimuli.copy()
    relabelled.loc[fit_ids[0], "concept"] = test_rows["concept"].iloc[0]
    with pytest.raises(LeakageError, match="test images"):
        check_readout_images(relabelled, fit_ids, "t")


def test_two_way_on_identical_probabilities_is_one(world: dict[str, Path], fitted) -> None:
    readout, _ = fitted
    stimuli = read_stimuli(world["table"])
    ids = stimuli.index[stimuli["role"] == "test"].tolist()
    vectors = readout.vector(load_images(stimuli, world["images"], ids, PX))
    assert vectors.shape == (4, 3 + 3 + 2)
    start = 0
    for a in readout.attributes:  # one probability distribution per attribute
        k = len(readout.classes[a])
        assert np.allclose(vectors[:, start : start + k].sum(axis=1), 1.0)
        start += k
    assert im.two_way_identification(vectors, vectors) == 1.0
    assert im.two_way_identification(vectors, np.roll(vectors, 1, axis=0)) < 1.0  # wrong pairings fail


def test_deterministic_and_round_trips(
    world: dict[str, Path], opts: ReadoutOptions, fitted, tmp_path
) -> None:
    readout, accuracy = fitted
    out = {k: str(tmp_path / f) for k, f in (("model", "readout.npz"), ("accuracy", "accuracy.tsv"))}
    fit_and_write(str(world["table"]), str(world["images"]), dict(vars(opts)), PX, 0, out["model"],
                  out["accuracy"])  # fmt: skip
    again = load_readout(out["model"])
    for a in readout.attributes:
        np.testing.assert_array_equal(again.coef[a], readout.coef[a])
    pd.testing.assert_frame_equal(read_accuracy(out["accuracy"]), accuracy, check_dtype=False)
    stimuli = read_stimuli(world["table"])
    seen = load_images(stimuli, world["images"], readout.val_ids[:3], PX)
    np.testing.assert_allclose(again.vector(seen), readout.vector(seen))
    other_seed = readout_images(stimuli, opts, seed=1)[1]
    assert other_seed != readout.val_ids  # the seed, not chance, fixes the held-out part
    with pytest.raises(ValueError, match="fitted on 48-px images"):
        readout.vector(load_images(stimuli, world["images"], readout.val_ids[:2], 32))


def test_missing_attribute_column_is_a_clear_error(world: dict[str, Path], opts: ReadoutOptions) -> None:
    stimuli = read_stimuli(world["table"]).drop(columns=["texture"])
    with pytest.raises(
        ValueError, match=r"stimuli\.tsv: the attribute readout needs attribute column\(s\) texture"
    ):
        readout_images(stimuli, opts, seed=0, where=str(world["table"]))
    with pytest.raises(ValueError, match="attribute_readout.enabled: false"):
        readout_images(stimuli, opts, seed=0)


def test_metrics_job_scores_the_readout_at_the_simulation_level(
    world: dict[str, Path], tmp_path: Path, caplog
) -> None:
    """score_subjects with the readout: a reconstruction equal to the seen image scores 1.0 two-way and 0
    distance, the log reports the held-out accuracy, and the metric is labelled simulation-level."""
    model, accuracy = str(tmp_path / "readout.npz"), str(tmp_path / "accuracy.tsv")
    cfg = section_defaults("reconstruction", "metrics", "attribute_readout")
    fit_and_write(str(world["table"]), str(world["images"]), cfg, PX, 0, model, accuracy)
    stimuli = read_stimuli(world["table"])
    ids = stimuli.index[stimuli["role"] == "test"].tolist()
    save_npz({"images": load_images(stimuli, world["images"], ids, PX), "image_id": np.array(ids)},
             tmp_path / "r.npz")  # fmt: skip
    metrics_cfg = {"image_size": PX, "rank_by": "ssim", "optional_extractors": []}
    with caplog.at_level("INFO"):
        score_subjects(
            "decoder", ["01"], [str(tmp_path / "r.npz")], [str(tmp_path)], [str(tmp_path / "m.tsv")],
            [str(tmp_path / "m.png")], str(world["table"]), str(world["images"]), metrics_cfg, {}, {},
            readout_model=model, readout_accuracy=accuracy,
        )  # fmt: skip
    assert "attribute readout accuracy on held-out training images: shape" in caplog.text
    metrics = read_tsv(tmp_path / "m.tsv")
    assert (metrics["two_way_attribute_readout"] == 1.0).all()
    assert metrics["attribute_readout_distance"].to_numpy() == pytest.approx(0.0, abs=1e-9)
    assert metric_level("two_way_attribute_readout", {}) == "simulation"  # not one of the paper's metrics
    assert metric_level("attribute_readout_distance", {}) == "simulation"
    assert metric_level("two_way_colour_hist", {"colour_hist": "low"}) == "low"


def test_enabled_setting() -> None:
    assert section_defaults("reconstruction", "metrics", "attribute_readout")["enabled"] == "auto"
    assert attribute_readout_on("auto", simulated=True) and not attribute_readout_on("auto", simulated=False)
    assert attribute_readout_on(True, simulated=False) and not attribute_readout_on(False, simulated=True)
    with pytest.raises(ConfigError, match="auto, true or false"):
        attribute_readout_on("yes", simulated=True)
