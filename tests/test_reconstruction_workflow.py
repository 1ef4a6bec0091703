"""End-to-end checks of the reconstruction stage on config/tiny.yaml (outputs of the session's `all` run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from megdecode.artifacts.latents import read_latents
from megdecode.artifacts.stimuli import read_stimuli, train_image_ids
from megdecode.config import load_config
from megdecode.io import load_npz, read_json, read_tsv
from megdecode.reconstruction.base import load_images
from megdecode.reconstruction.decoder import DecoderGenerator

REPO = Path(__file__).resolve().parents[1]
TINY = load_config(REPO / "config.yaml", REPO / "config" / "tiny.yaml")
GENERATORS = TINY["reconstruction"]["generators"]
SUBJECTS = TINY["study"]["subjects"]

pytestmark = pytest.mark.slow


def _decoder_dir(results: Path) -> Path:
    dirs = sorted((results / "generators" / "decoder").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_decoder_reconstructs_training_stimuli_better_than_the_mean_image(tiny_results: Path) -> None:
    d = _decoder_dir(tiny_results)
    backbone = d.name
    generator = DecoderGenerator(d / "model.safetensors", d / "decoder.json")
    stimuli = read_stimuli(tiny_results / "stimuli" / "stimuli.tsv")
    ids = train_image_ids(stimuli)
    size = read_json(d / "decoder.json")["params"]["image_size"]
    target = load_images(stimuli, tiny_results / "stimuli" / "images", ids, size) / 255.0
    decoded = generator.decode(read_latents(tiny_results / "latents" / backbone).get(ids, np.float32)) / 255.0
    mse = float(((decoded - target) ** 2).mean())
    mse_mean_image = float(((target - target.mean(0, keepdims=True)) ** 2).mean())
    assert mse < mse_mean_image, (backbone, mse, mse_mean_image)
    # never trained on a test-concept image
    meta = read_json(d / "decoder.json")
    assert meta["n_train_images"] == len(ids)


@pytest.mark.parametrize("generator", GENERATORS)
@pytest.mark.parametrize("subject", SUBJECTS)
def test_per_subject_outputs(tiny_results: Path, generator: str, subject: str) -> None:
    out = tiny_results / "reconstruction" / generator / f"sub-{subject}"
    data = load_npz(out / "reconstructions.npz")
    stimuli = read_stimuli(tiny_results / "stimuli" / "stimuli.tsv")
    test_ids = set(stimuli.loc[stimuli["role"] == "test", "image_id"])
    assert set(data["image_id"].tolist()) == test_ids
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == sorted(test_ids)
    metrics = read_tsv(out / "metrics.tsv", dtype={"subject": str, "image_id": str})
    assert {"pixcorr", "ssim"} <= set(metrics.columns)
    assert any(c.startswith("two_way_") for c in metrics.columns)
    assert "two_way_attribute_readout" in metrics.columns  # a simulated study: the readout is on (auto)
    assert metrics.filter(like="two_way_").stack().between(0, 1).all()
    if generator == "retrieval":
        assert set(metrics["retrieved_id"]) <= set(train_image_ids(stimuli))
    assert (out / "best_median_worst.png").stat().st_size > 1000


def test_summary_next_to_paper_numbers(tiny_results: Path) -> None:
    summary = read_tsv(tiny_results / "reconstruction" / "summary.tsv", dtype={"subject": str})
    ours = summary[summary["source"] == "this run"]
    assert set(ours["generator"]) == set(GENERATORS)
    assert set(ours["subject"]) == {*SUBJECTS, "mean"}
    assert np.isfinite(ours["value"]).all()
    paper = summary[summary["source"].str.startswith("paper")]
    assert dict(zip(paper["metric"], paper["value"], strict=True))["ssim"] == pytest.approx(0.327)
    md = (tiny_results / "reconstruction" / "summary.md").read_text()
    assert "paper, THINGS-MEG (reported, 425 px)" in md and "| decoder (32 px) |" in md  # tiny: 32 px
    assert set(ours["image_px"]) == {32} and set(paper["image_px"]) == {425}


def test_attribute_readout_reads_held_out_training_images(tiny_results: Path) -> None:
    """The readout behind two_way_attribute_readout reads the attributes of training images it was not fitted
    on well above chance (tiny: 115 fit, 29 held-out images at 32 px), so the metric has meaning."""
    accuracy = read_tsv(tiny_results / "reconstruction" / "attribute_readout" / "accuracy.tsv")
    assert list(accuracy["attribute"]) == ["shape", "colour", "texture"]
    assert (accuracy["split"] == "val").all()
    assert (accuracy["accuracy"] > accuracy["chance"] + 0.2).all(), accuracy
