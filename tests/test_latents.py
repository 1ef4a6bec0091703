"""Latents: handcrafted features with known answers, attributes, registry, stimuli, sidecars, schema."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from latents_fixtures import make_stimuli
from PIL import Image

from megdecode.config import load_schema
from megdecode.io import load_npy, read_tsv
from megdecode.latents import (
    ImageLoadError,
    LatentKind,
    LatentResult,
    compute_latents,
    get_kind,
    load_stimuli,
    make_backbone,
    register_kind,
)
from megdecode.latents.attributes import AttributesOptions, attribute_codes
from megdecode.latents.handcrafted import (
    HandcraftedOptions,
    colour_histogram,
    handcrafted_vector,
    hog_features,
    lbp_histogram,
)
from megdecode.latents.hf_common import RandomInit
from megdecode.latents.hf_text import TextOptions, make_captions
from megdecode.latents.hf_vision import VisionOptions
from megdecode.latents.vae import VaeOptions


def test_colour_histogram_of_pure_red_is_one_bin() -> None:
    red = np.zeros((16, 16, 3), dtype=np.uint8)
    red[..., 0] = 255
    hist = colour_histogram(red, bins=4)
    assert hist.shape == (64,)
    expected = np.zeros(64)
    expected[(3 * 4 + 0) * 4 + 0] = 1.0  # r in the top bin, g and b in the bottom one
    np.testing.assert_array_equal(hist, expected)


def test_colour_histogram_splits_two_colours_by_area() -> None:
    img = np.zeros((10, 10, 3), dtype=np.uint8)
    img[:, :3] = (0, 0, 255)  # 30% blue, 70% black
    hist = colour_histogram(img, bins=2)
    assert hist[0] == pytest.approx(0.7) and hist[1] == pytest.approx(0.3)


def _orientation_energy(gray: np.ndarray) -> np.ndarray:
    """HOG with one-cell blocks, summed over cells: energy per orientation bin."""
    h = hog_features(gray, orientations=9, pixels_per_cell=8, cells_per_block=1)
    return h.reshape(-1, 9).sum(axis=0)


def test_hog_of_vertical_edge_peaks_at_horizontal_gradient() -> None:
    gray = np.zeros((32, 32))
    gray[:, 16:] = 1.0  # vertical edge: the gradient points along x (orientation bin 0)
    energy = _orientation_energy(gray)
    assert energy.argmax() == 0
    assert energy[1:].sum() == pytest.approx(0.0, abs=1e-9)
    transposed = _orientation_energy(gray.T)  # horizontal edge: gradient along y (90 degrees, bin 4 of 9)
    assert transposed.argmax() == 4


def test_lbp_of_flat_image_is_one_uniform_code() -> None:
    hist = lbp_histogram(np.full((12, 12), 0.5), points=8, radius=1)
    assert hist.shape == (10,)
    # every interior pixel sees 8 equal neighbours: the all-ones uniform code P (= 8); borders differ
    assert hist[8] == pytest.approx(10 * 10 / (12 * 12))


def test_handcrafted_vector_blocks_and_norm() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    opts = HandcraftedOptions(features=["colour_histogram", "pixels"], image_size=32, pixels_size=4)
    vec = handcrafted_vector(rgb, opts)
    assert vec.shape == (64 + 48,)
    assert np.linalg.norm(vec[:64]) == pytest.approx(1.0) and np.linalg.norm(vec[64:]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="subset"):
        HandcraftedOptions(features=["sift"])


def test_attribute_codes_one_hot_and_multi_hot() -> None:
    import pandas as pd

    table = pd.DataFrame({"shape": ["square", "circle", "square"], "colour": ["red", "red|blue", None]})
    codes, vocab = attribute_codes(table, AttributesOptions(columns=["shape", "colour"]))
    assert vocab == {"shape": ["circle", "square"], "colour": ["blue", "red"]}
    np.testing.assert_array_equal(codes, [[0, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 0]])
    with pytest.raises(ValueError, match="'texture'|texture"):
        attribute_codes(table, AttributesOptions(columns=["texture"]))


def test_captions_from_template() -> None:
    import pandas as pd

    table = pd.DataFrame({"concept": ["bean_bag"], "colour": ["red"]})
    assert make_captions(table, "a {colour} {concept}") == ["a red bean bag"]
    with pytest.raises(ValueError, match="shape"):
        make_captions(table, "a {shape}")


def test_load_stimuli_excludes_catch_and_keeps_order(tmp_path) -> None:
    table, images = make_stimuli(tmp_path)
    stimuli = load_stimuli(table, images)
    assert "catch_00" not in stimuli.image_ids
    assert len(stimuli) == 12 and stimuli.image_ids[0] == "red_square_00"
    assert set(stimuli.table["role"]) == {"exp", "test"}


def test_unreadable_image_error_names_the_file(tmp_path) -> None:
    table, images = make_stimuli(tmp_path)
    broken = images / "red_square" / "red_square_01.png"
    broken.write_bytes(b"not a png")
    spec = {"kind": "handcrafted", "options": {"features": ["colour_histogram"], "image_size": 16}}
    out = tmp_path / "out"
    with pytest.raises(ImageLoadError, match="red_square_01.png"):
        compute_latents("hc", spec, table, images, out)
    assert not (out / "latents.npy").exists()
    broken.unlink()
    with pytest.raises(ImageLoadError, match="not found: .*red_square_01.png"):
        compute_latents("hc", spec, table, images, out)


def test_compute_latents_writes_contract_files_deterministically(tmp_path) -> None:
    table, images = make_stimuli(tmp_path)
    spec = {"kind": "handcrafted", "label": "", "options": {"features": ["colour_histogram", "hog", "lbp"]}}
    arrays = []
    for run in ("a", "b"):
        out = tmp_path / run
        compute_latents("hc", spec, table, images, out)
        arrays.append(load_npy(out / "latents.npy"))
    assert arrays[0].dtype == np.float32 and arrays[0].shape[0] == 12
    np.testing.assert_array_equal(arrays[0], arrays[1])
    index = read_tsv(tmp_path / "a" / "index.tsv", dtype={"image_id": str})
    assert list(index.columns) == ["image_id"]
    assert index["image_id"].tolist() == load_stimuli(table, images).image_ids
    meta = json.loads((tmp_path / "a" / "latents.json").read_text())
    assert meta["shape"] == list(arrays[0].shape) and meta["kind"] == "handcrafted"
    assert meta["pretrained"] is None and meta["random_init"] is False
    assert meta["label"] == "Colour histogram + HOG + LBP"
    assert (tmp_path / "a" / "latents.json").read_bytes() == (tmp_path / "b" / "latents.json").read_bytes()


def test_attributes_latents_through_pipeline(tmp_path) -> None:
    table, images = make_stimuli(tmp_path)
    out = tmp_path / "attr"
    spec = {"kind": "attributes", "label": "Attributes", "options": {"columns": ["shape", "colour"]}}
    compute_latents("attr", spec, table, images, out)
    lat = load_npy(out / "latents.npy")
    assert lat.shape == (12, 5)  # 2 shapes + 3 colours (the catch row's "none" is excluded with it)
    np.testing.assert_array_equal(lat.sum(axis=1), 2.0)


def test_registry_unknown_kind_and_options() -> None:
    with pytest.raises(KeyError, match="unknown backbone kind 'nope'"):
        get_kind("nope")
    with pytest.raises(ValueError, match="backbones.x.options: unknown option"):
        make_backbone("x", {"kind": "handcrafted", "options": {"colour_binz": 3}})


def test_register_a_new_kind(tmp_path) -> None:
    @dataclasses.dataclass
    class MeanOptions:
        scale: float = 1.0

    @register_kind("test_mean_colour")
    class MeanColour(LatentKind):
        Options = MeanOptions

        def compute(self, stimuli, threads=1, weights_dir=None):
            means = [
                stimuli.load_rgb(i).reshape(-1, 3).mean(axis=0) * self.options.scale
                for i in range(len(stimuli))
            ]
            return LatentResult(np.asarray(means, dtype=np.float32), {"model": "mean"})

    table, images = make_stimuli(tmp_path)
    out = tmp_path / "m"
    spec = {"kind": "test_mean_colour", "options": {"scale": 2.0}}
    compute_latents("m", spec, table, images, out)
    assert load_npy(out / "latents.npy").shape == (12, 3)


def test_image_loader_rejects_non_images(tmp_path) -> None:
    from megdecode.latents.stimuli import load_rgb

    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(good)
    assert load_rgb(good, 4).shape == (4, 4, 3)  # grey converted to RGB, resized
    (tmp_path / "bad.jpg").write_text("hello")
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        load_rgb(tmp_path / "bad.jpg")


OPTION_CLASSES = {
    "handcrafted": HandcraftedOptions,
    "attributes": AttributesOptions,
    "huggingface_vision": VisionOptions,
    "huggingface_text": TextOptions,
    "diffusers_vae": VaeOptions,
}


def _option_schemas() -> dict[str, dict]:
    backbone = load_schema()["properties"]["backbones"]["additionalProperties"]
    return {
        b["if"]["properties"]["kind"]["const"]: b["then"]["properties"]["options"] for b in backbone["allOf"]
    }


@pytest.mark.parametrize("kind", sorted(OPTION_CLASSES))
def test_schema_defaults_match_option_dataclasses(kind: str) -> None:
    """Schema and dataclass must agree: same keys, same defaults, every key described."""
    schema = _option_schemas()[kind]
    cls = OPTION_CLASSES[kind]
    defaults = dataclasses.asdict(cls())
    assert set(schema["properties"]) == set(defaults)
    for key, sub in schema["properties"].items():
        assert sub.get("description"), f"{kind}.{key} lacks a description"
        assert sub["default"] == defaults[key], f"{kind}.{key}: schema {sub['default']} != {defaults[key]}"


def test_random_init_schema_matches_dataclass() -> None:
    schema = _option_schemas()["huggingface_vision"]["properties"]["random_init"]["properties"]
    defaults = dataclasses.asdict(RandomInit())
    assert set(schema) == set(defaults)
    assert all(schema[k]["default"] == v and schema[k]["description"] for k, v in defaults.items())


def test_needs_random_build() -> None:
    from megdecode.latents import needs_random_build

    assert needs_random_build({"kind": "huggingface_vision", "options": {"random_init": {}}})  # all defaults
    assert not needs_random_build(
        {"kind": "huggingface_vision", "options": {"model": "facebook/dinov2-giant"}}
    )
    assert not needs_random_build({"kind": "handcrafted"})


def test_job_resources_by_kind_and_override() -> None:
    from megdecode.latents import latents_job_resources

    assert latents_job_resources({"kind": "handcrafted"}) == {"mem_mb": 2000, "runtime": 30, "gpu": 0}
    assert (
        latents_job_resources({"kind": "huggingface_vision", "options": {"random_init": {}}})["mem_mb"]
        == 2000
    )
    hub = {"kind": "huggingface_vision", "options": {"model": "facebook/dinov2-giant"}}
    assert latents_job_resources(hub) == {"mem_mb": 16000, "runtime": 240, "gpu": 1}
    assert latents_job_resources({**hub, "mem_mb": 64000, "runtime": 0})["mem_mb"] == 64000
    assert latents_job_resources({**hub, "gpu": 0})["gpu"] == 0


@pytest.mark.parametrize(("tokens", "bad"), [(0, np.nan), (3, np.inf)])
def test_latents_reader_rejects_non_finite_rows_naming_file_and_image(tmp_path, tokens, bad) -> None:
    """A NaN row in latents.npy used to flow into training and retrieval and score 100% top-5."""
    from train_fixtures import make_latents

    from megdecode.artifacts.latents import read_latents

    folder = make_latents(tmp_path / "lat", n_images=40, tokens=tokens)
    values = load_npy(folder / "latents.npy")
    values[[7, 30]] = bad
    np.save(folder / "latents.npy", values)
    with pytest.raises(ValueError) as err:
        read_latents(folder)
    msg = str(err.value)
    assert (
        str(folder / "latents.npy") in msg
        and "2 of 40 image(s)" in msg
        and "(first: 'img007', 'img030')" in msg
    )
    assert f"Delete {folder} and run the same snakemake command again" in msg
