"""Reconstruction generators and stage functions on a small hand-made study (no workflow run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from megdecode.artifacts.latents import read_latents
from megdecode.artifacts.stimuli import read_stimuli, train_image_ids
from megdecode.config import section_defaults
from megdecode.io import load_npz, read_tsv, save_npz, write_tsv
from megdecode.latents import compute_latents
from megdecode.reconstruction import load_predictions, reconstruct_subject, score_subjects, summarise
from megdecode.reconstruction.base import load_images
from megdecode.reconstruction.decoder import DecoderGenerator, DecoderParams, fit_decoder, train_decoder
from megdecode.reconstruction.retrieval import cosine_nearest
from megdecode.reconstruction.stage import PAPER_THINGS_MEG, best_median_worst

COLOURS = [(230, 40, 40), (40, 200, 60), (50, 80, 230), (240, 220, 40), (200, 60, 220), (40, 210, 220)]
PIXELS = {"kind": "handcrafted", "options": {"features": ["pixels"], "pixels_size": 8, "image_size": 32}}
COLOUR_HIST = {"kind": "handcrafted", "options": {"features": ["colour_histogram"], "image_size": 32}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _render(colour: tuple[int, int, int], square: bool, shift: int, size: int = 32) -> np.ndarray:
    """A coloured square or disc on grey, shifted by ``shift`` pixels."""
    img = np.full((size, size, 3), 128, dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2 + shift
    mask = (np.abs(yy - c) < 8) & (np.abs(xx - c) < 8) if square else (yy - c) ** 2 + (xx - c) ** 2 < 80
    img[mask] = colour
    return img


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 concepts (colour x shape) x 4 exemplars; the last 3 concepts are test concepts with a test image."""
    from PIL import Image

    root = tmp_path_factory.mktemp("study")
    images = root / "images"
    images.mkdir()
    rows = []
    for k, (colour, square) in enumerate([(c, s) for s in (True, False) for c in COLOURS]):
        concept = f"c{k:02d}"
        test_concept = k >= 9
        for ex in range(4):
            role = "test" if test_concept and ex == 0 else "exp"
            image_id = f"{concept}_{ex}"
            Image.fromarray(_render(colour, square, shift=ex - 2)).save(images / f"{image_id}.png")
            rows.append(
                {
                    "image_id": image_id,
                    "file": f"{image_id}.png",
                    "concept": concept,
                    "exemplar": ex,
                    "role": role,
                    "concept_split": "test" if test_concept else "train",
                }
            )
    table = root / "stimuli.tsv"
    write_tsv(pd.DataFrame(rows), table)
    paths = {"root": root, "table": table, "images": images}
    for name, spec in (("pixels", PIXELS), ("colour_hist", COLOUR_HIST)):
        d = root / "latents" / name
        compute_latents(name, spec, table, images, d)
        paths[name] = d
    return paths


def _predictions(study: dict[str, Path], backbone: str, noise: float, out: Path, seed: int = 0) -> Path:
    """A predictions.npz as training writes it: test images' latents + noise, in the standardised space."""
    table = read_latents(study[backbone])
    stimuli = read_stimuli(study["table"])
    train_ids = train_image_ids(stimuli)
    test_ids = stimuli.loc[stimuli["role"] == "test", "image_id"].tolist()
    mean, std = table.get(train_ids, np.float32).mean(0), table.get(train_ids, np.float32).std(0) + 1e-6
    z = (table.get(test_ids, np.float32) - mean) / std
    z = z + noise * np.random.default_rng(seed).standard_normal(z.shape)
    arrays = {
        "test_small_pred": z.astype(np.float32),
        "test_small_image_id": np.array(test_ids),
        "target_mean": mean.astype(np.float32),
        "target_std": std.astype(np.float32),
    }
    save_npz(arrays, out)
    return out


def test_load_predictions_destandardises(study: dict[str, Path], tmp_path: Path) -> None:
    path = _predictions(study, "pixels", noise=0.0, out=tmp_path / "predictions.npz")
    pred = load_predictions(path, "test_small")
    truth = read_latents(study["pixels"]).get(pred.image_id.tolist(), np.float32)
    np.testing.assert_allclose(pred.latents, truth, atol=1e-4)
    with pytest.raises(KeyError, match="test_large_pred"):
        load_predictions(path, split="test_large")


def test_decoder_beats_mean_image_on_training_stimuli(study: dict[str, Path]) -> None:
    stimuli = read_stimuli(study["table"])
    ids = train_image_ids(stimuli)
    assert not set(ids) & set(stimuli.loc[stimuli["concept_split"] == "test", "image_id"])
    latents = read_latents(study["pixels"]).get(ids, np.float32)
    images = load_images(stimuli, study["images"], ids, 16)
    params = DecoderParams.from_config(
        {
            **section_defaults("reconstruction", "decoder"),
            "image_size": 16,
            "pca_components": 16,
            "epochs": 60,
        }
        | {"width": 32, "val_fraction": 0.0}
    )
    model, transform, history = fit_decoder(latents, images, params, seed=0)
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(transform(latents))).permute(0, 2, 3, 1).numpy()
    target = images / 255.0
    mse = float(((out - target) ** 2).mean())
    mse_mean_image = float(((target - target.mean(0, keepdims=True)) ** 2).mean())
    assert mse < 0.5 * mse_mean_image, (mse, mse_mean_image)
    assert history["train_mse"].iloc[-1] < history["train_mse"].iloc[0]


def test_train_decoder_is_deterministic_and_loads_back(study: dict[str, Path], tmp_path: Path) -> None:
    cfg = section_defaults("reconstruction", "decoder") | {"image_size": 8, "width": 16, "pca_components": 8}
    cfg["epochs"] = 3
    outs = []
    for run in ("a", "b"):
        d = tmp_path / run
        train_decoder(
            study["pixels"], study["table"], study["images"], d / "model.safetensors", d / "decoder.json",
            d / "history.tsv", cfg, "pixels", seed=0,
        )  # fmt: skip
        outs.append(d)
    assert (outs[0] / "model.safetensors").read_bytes() == (outs[1] / "model.safetensors").read_bytes()
    gen = DecoderGenerator(outs[0] / "model.safetensors", outs[0] / "decoder.json")
    pred = load_predictions(_predictions(study, "pixels", 0.0, tmp_path / "p.npz"), "test_small")
    images = gen.generate({"pixels": pred})
    assert images.shape == (len(pred.image_id), 8, 8, 3) and images.dtype == np.uint8
    with pytest.raises(KeyError, match="trained for backbone 'pixels'"):
        gen.generate({"hog": pred})


def test_cosine_nearest() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(
        cosine_nearest(np.array([[2.0, 0.1], [0.1, 3.0], [5.0, 5.0]]), gallery), [0, 1, 2]
    )


@pytest.fixture(scope="module")
def decoder_files(study: dict[str, Path]) -> dict[str, Path]:
    d = study["root"] / "generators" / "decoder" / "pixels"
    cfg = section_defaults("reconstruction", "decoder") | {
        "image_size": 16,
        "width": 32,
        "pca_components": 16,
    }
    cfg["epochs"] = 20
    train_decoder(
        study["pixels"], study["table"], study["images"], d / "model.safetensors", d / "decoder.json",
        d / "history.tsv", cfg, "pixels", seed=0,
    )  # fmt: skip
    return {"model": d / "model.safetensors", "meta": d / "decoder.json", "history": d / "history.tsv"}


RECON_CFG = {
    "split": "test_small",
    "backbone": "pixels",
    "retrieval": {"image_size": 32},
    "clip_predictions": True,
}
METRICS_CFG = {"image_size": 32, "rank_by": "ssim", "optional_extractors": ["alexnet2"]}


@pytest.mark.parametrize("generator", ["decoder", "retrieval"])
def test_reconstruct_and_score_subject(
    generator: str, study: dict[str, Path], decoder_files: dict[str, Path], tmp_path: Path, caplog
) -> None:
    pred = _predictions(study, "pixels", noise=0.3, out=tmp_path / "pred.npz")
    out = tmp_path / generator / "sub-01"
    reconstruct_subject(
        generator, RECON_CFG, {"pixels": str(pred)}, str(study["table"]), str(study["images"]),
        str(out / "reconstructions.npz"), str(out / "images"), seed=0, subject="01",
        latents_dirs={"pixels": str(study["pixels"])}, decoder_model=str(decoder_files["model"]),
        decoder_meta=str(decoder_files["meta"]),
    )  # fmt: skip
    data = load_npz(out / "reconstructions.npz")
    test_ids = ["c09_0", "c10_0", "c11_0"]
    assert data["image_id"].tolist() == test_ids
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == test_ids
    if generator == "retrieval":
        stimuli = read_stimuli(study["table"])
        retrieved = data["retrieved_id"].tolist()
        assert set(retrieved) <= set(train_image_ids(stimuli))  # never a test image
    with caplog.at_level("INFO"):
        score_subjects(
            generator, ["01"], [str(out / "reconstructions.npz")], [str(out / "images")],
            [str(out / "metrics.tsv")], [str(out / "best_median_worst.png")], str(study["table"]),
            str(study["images"]), METRICS_CFG, {"colour_hist": COLOUR_HIST, "attrs": {"kind": "attributes"}},
            {},
        )  # fmt: skip
    assert "alexnet2 skipped" in caplog.text
    assert "attrs skipped" in caplog.text
    metrics = read_tsv(out / "metrics.tsv", dtype={"subject": str})
    assert metrics["image_id"].tolist() == test_ids
    for col in ("pixcorr", "ssim", "two_way_colour_hist", "colour_hist_distance"):
        assert metrics[col].notna().all(), col
    assert (metrics["image_px"] == METRICS_CFG["image_size"]).all()
    assert (out / "best_median_worst.png").stat().st_size > 1000


def test_metrics_compare_like_with_like(study: dict[str, Path], tmp_path: Path) -> None:
    """A reconstruction that is the seen image scores as the seen image: the features of both come from the
    same pixels through the same extractor (distance 0, not the gap between stored latents and PNG features).
    """
    ids = ["c09_0", "c10_0", "c11_0"]
    stimuli = read_stimuli(study["table"])
    distances = {}
    for size in (METRICS_CFG["image_size"], 64):  # generated at the compared size, and at another size
        seen = load_images(stimuli, study["images"], ids, size)
        save_npz({"images": seen, "image_id": np.array(ids)}, tmp_path / f"r{size}.npz")
        score_subjects(
            "decoder", ["01"], [str(tmp_path / f"r{size}.npz")], [str(tmp_path)],
            [str(tmp_path / f"{size}.tsv")], [str(tmp_path / f"{size}.png")], str(study["table"]),
            str(study["images"]), METRICS_CFG, {"colour_hist": COLOUR_HIST}, {},
        )  # fmt: skip
        metrics = read_tsv(tmp_path / f"{size}.tsv")
        assert (metrics["image_px"] == METRICS_CFG["image_size"]).all()
        distances[size] = metrics["colour_hist_distance"].to_numpy()
    assert distances[METRICS_CFG["image_size"]] == pytest.approx(0.0, abs=1e-9)
    assert (distances[64] < 0.05).all()  # only the resampling differs


def test_summary_has_paper_rows_labelled(tmp_path: Path) -> None:
    paths = []
    for gen, base in (("decoder", 0.5), ("retrieval", 0.3)):
        for subject in ("01", "02"):
            p = tmp_path / f"{gen}_{subject}.tsv"
            write_tsv(
                pd.DataFrame(
                    {
                        "subject": subject,
                        "generator": gen,
                        "image_id": ["a", "b"],
                        "pixcorr": [base, base + 0.1],
                        "hog_distance": [0.2, 0.4],
                        "image_px": 32,
                    }
                ),
                p,
            )
            paths.append(str(p))
    summary = summarise(paths, tmp_path / "summary.tsv", tmp_path / "summary.md", tmp_path / "summary.html")
    mean = summary[(summary["subject"] == "mean") & (summary["source"] == "this run")]
    got = mean.set_index(["generator", "metric"])["value"]
    assert got[("decoder", "pixcorr")] == pytest.approx(0.55)
    assert got[("retrieval", "hog_distance")] == pytest.approx(0.3)
    assert not mean.set_index("metric")["higher_is_better"]["hog_distance"].any()
    paper = summary[summary["source"].str.startswith("paper")]
    assert dict(zip(paper["metric"], paper["value"], strict=True)) == PAPER_THINGS_MEG
    md = (tmp_path / "summary.md").read_text()
    assert (
        "paper, THINGS-MEG (reported, 425 px)" in md
        and "| decoder (32 px) |" in md
        and "hog_distance ↓" in md
    )
    html = (tmp_path / "summary.html").read_text()
    assert html.count("<table") == 2 and "not computed by this run" in html and "Per subject" in html


def test_best_median_worst_respects_direction() -> None:
    values = np.array([0.3, 0.9, 0.1, 0.5, 0.7])
    assert best_median_worst(values, higher_is_better=True) == [1, 3, 2]
    assert best_median_worst(values, higher_is_better=False) == [2, 3, 1]


def test_decoder_clips_predictions_to_its_training_range(tmp_path: Path) -> None:
    """A prediction outside the training latents' range (a negative histogram bin) is clipped before decoding
    when asked (reconstruction.clip_predictions), so it decodes like the in-range latent nearest to it."""
    from megdecode.reconstruction.decoder import InputTransform

    latents = np.random.default_rng(0).uniform(0.0, 1.0, (40, 6))
    transform = InputTransform.fit(latents, 0)
    np.testing.assert_array_equal(transform.low, latents.min(0).astype(np.float32))
    wild = latents[:3] + np.array([[-5.0, 0, 0, 0, 0, 7.0]])
    clipped = transform.clip(wild)
    assert (clipped >= transform.low).all() and (clipped <= transform.high).all()
    np.testing.assert_allclose(clipped[:, 1:5], latents[:3, 1:5], rtol=1e-6)
    np.testing.assert_allclose(clipped[:, 0], transform.low[0]) and np.testing.assert_allclose(
        clipped[:, 5], transform.high[5]
    )


def test_field_feature_nets_skip_cleanly_without_torchvision_or_weights(caplog) -> None:
    """The paper's feature nets are an optional extra: without torchvision (or their weights in torch's hub
    cache) they are skipped with the reason logged; nothing is downloaded."""
    import importlib.util
    import logging

    from megdecode.metrics import extractors

    with caplog.at_level(logging.INFO):
        nets = extractors.available_extractors(["alexnet2", "swav", "nope"])
    assert "nope" not in nets and "metric nope skipped: unknown extractor" in caplog.text
    if importlib.util.find_spec("torchvision") is None:
        assert nets == {} and "metric swav skipped: torchvision is not installed" in caplog.text
    else:
        for name in ("alexnet2", "swav"):
            assert (name in nets) == extractors.weights_path(extractors.SPECS[name]).is_file()


def test_field_feature_nets_follow_the_published_definitions() -> None:
    """Where torchvision and AlexNet's weights are installed: features.4 of a 256-px input (MindEye's
    AlexNet(2)) for uint8 images of any size."""
    pytest.importorskip("torchvision")
    from megdecode.metrics import extractors

    if extractors.missing_requirement("alexnet2") is not None:
        pytest.skip(extractors.missing_requirement("alexnet2"))
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    feats = extractors.build_extractor("alexnet2")(images)
    assert feats.shape == (2, 192 * 31 * 31) and np.isfinite(feats).all()
