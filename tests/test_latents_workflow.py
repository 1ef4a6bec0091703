"""The latents rules end to end: on a small stimulus set of our own, and in the tiny workflow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, run_snakemake
from latents_fixtures import make_stimuli

from megdecode.config import load_config
from megdecode.io import load_npy, read_tsv

# tiny.yaml's backbone names (other sections refer to them), with options of our own
BACKBONES = {
    "colour_hist": {
        "kind": "handcrafted",
        "options": {"features": ["colour_histogram", "hog"], "image_size": 32},
    },
    "attributes": {"kind": "attributes", "label": "Attributes"},
    "dinov2_random": {
        "kind": "huggingface_vision",
        "options": {"random_init": {"hidden_size": 16, "num_hidden_layers": 1, "image_size": 16}},
    },
}
# the stimuli come from our fixture; "--" ends the multi-valued options before the targets
LATENT_RULES = ("--replace-workflow-config", "--allowed-rules", "latents", "build_random_backbone", "--")


def targets(results: Path, names) -> list[str]:
    return [
        str(results / "latents" / n / f) for n in names for f in ("latents.npy", "index.tsv", "latents.json")
    ]


def write_config(path: Path, backbones: dict) -> Path:
    """The tiny config, these backbones in place of its own; a whole config (--replace-workflow-config)."""
    base = load_config(REPO / "config.yaml", REPO / "config" / "tiny.yaml")
    base["backbones"] = backbones
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.mark.slow
def test_latents_rules_on_own_stimuli_and_rerun_scope(tmp_path) -> None:
    results = tmp_path / "results"
    table, _ = make_stimuli(results / "stimuli", size=32)
    config = write_config(tmp_path / "config.yaml", BACKBONES)
    run_snakemake(results, *LATENT_RULES, *targets(results, BACKBONES), configfile=config, timeout=600)
    for name in BACKBONES:
        lat = load_npy(results / "latents" / name / "latents.npy")
        index = read_tsv(results / "latents" / name / "index.tsv", dtype={"image_id": str})
        assert lat.shape[0] == len(index) == 12  # 13 rows minus the catch image
        assert (results / "logs" / "latents" / f"{name}.log").is_file()
        assert (results / "benchmarks" / "latents" / f"{name}.tsv").is_file()
    meta = json.loads((results / "latents" / "dinov2_random" / "latents.json").read_text())
    assert meta["pretrained"] is False and meta["label"] == "DINOv2 (random init)"
    assert (results / "pretrained" / "dinov2_random" / "model.safetensors").is_file()
    assert not list((results / "pretrained").glob(".tmp-*"))

    # editing one backbone's options reruns that backbone only
    changed = json.loads(json.dumps(BACKBONES))
    changed["colour_hist"]["options"]["features"] = ["colour_histogram"]
    config = write_config(tmp_path / "changed.yaml", changed)
    dry = run_snakemake(results, "-n", *LATENT_RULES, *targets(results, changed), configfile=config)
    planned = set(re.findall(r"wildcards: backbone=(\w+)", dry.stdout + dry.stderr))
    assert planned == {"colour_hist"}


@pytest.mark.slow
def test_tiny_workflow_latents(tiny_results: Path) -> None:
    config = load_config(REPO / "config.yaml", REPO / "config" / "tiny.yaml")
    stimuli = read_tsv(tiny_results / "stimuli" / "stimuli.tsv", dtype={"image_id": str})
    expected = stimuli.loc[stimuli["role"].isin(["exp", "test"]), "image_id"].tolist()
    for name in config["backbones"]:
        folder = tiny_results / "latents" / name
        lat = load_npy(folder / "latents.npy")
        meta = json.loads((folder / "latents.json").read_text())
        assert read_tsv(folder / "index.tsv", dtype={"image_id": str})["image_id"].tolist() == expected
        assert lat.dtype == np.float32 and list(lat.shape) == meta["shape"] and np.isfinite(lat).all()
        assert lat.reshape(len(lat), -1).std(axis=0).max() > 0  # not a constant latent
        if meta["random_init"]:
            assert meta["pretrained"] is False and "random" in meta["label"].lower()
