"""config/things-meg.yaml on layout twins of ds004212: the full-size plan and a reduced end-to-end run.

Both read the real metadata beside the checkout (``things_meg`` fixture: skipped without it).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, THINGS_MEG, run_snakemake
from things_twin import TwinSpec, make_layout_twin, write_fake_stimuli

from megdecode.config import load_config
from megdecode.datasets import things

SUBJECTS = ["BIGMEG1", "BIGMEG2", "BIGMEG3", "BIGMEG4"]
SESSIONS = [f"{i:02d}" for i in range(1, 13)]
RUNS = [f"{i:02d}" for i in range(1, 11)]
#: rules that need a GPU on the real study (brain module training, Versatile Diffusion, latents of big ViTs)
GPU_RULES = ("train_brain", "reconstruct", "latents")


def things_config(tmp: Path, things_meg: Path, bids_root: Path, **overrides: dict) -> Path:
    """config/things-meg.yaml pointed at a twin (sections in ``overrides`` replace the file's)."""
    cfg = yaml.safe_load((REPO / "config" / "things-meg.yaml").read_text())
    cfg["study"].update(
        bids_root=str(bids_root),
        stimuli_root=str(tmp / "things_images"),
        image_table=str(things_meg / "things" / "things_meg_images.tsv"),
    )
    for key, value in overrides.items():
        if isinstance(value, dict) and key == "study":
            cfg["study"].update(value)
        else:
            cfg[key] = value
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def parse_dry_run(text: str) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Job counts per rule (the 'Job stats' table) and each rule's printed resources lines."""
    stats_block = text.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats_block, re.M)}
    resources: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if head:
            res = re.search(r"^\s+resources: (.*)$", block, re.M)
            resources.setdefault(head.group(1), []).append(res.group(1) if res else "")
    return counts, resources


@pytest.fixture(scope="module")
def full_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, float, dict]:
    shared = THINGS_MEG
    if not (shared / "ds004212").is_dir():
        pytest.skip(f"real THINGS-MEG metadata not found at {shared} (CI provides ../shared)")
    tmp = tmp_path_factory.mktemp("things_plan")
    spec = TwinSpec(SUBJECTS, SESSIONS, RUNS, recording="empty_ds")
    bids = make_layout_twin(shared / "ds004212", tmp / "ds004212", spec)
    configfile = things_config(tmp, shared, bids)
    start = time.perf_counter()
    proc = run_snakemake(tmp / "results", "-n", configfile=configfile, timeout=300)
    elapsed = time.perf_counter() - start
    counts, resources = parse_dry_run(proc.stdout + proc.stderr)
    return counts, resources, elapsed, yaml.safe_load(configfile.read_text())


def test_full_size_plan_jobs(full_plan: tuple[dict, dict, float, dict]) -> None:
    counts, _, elapsed, cfg = full_plan
    n_backbones = len(cfg["backbones"])
    assert elapsed < 60, f"planning the full study took {elapsed:.0f} s"
    assert counts.get("bids_inventory") == 1 and counts.get("stimuli_table") == 1
    per_run = {rule: n for rule, n in counts.items() if rule.startswith("preprocess") and n == 480}
    assert per_run, f"no per-run preprocessing rule with 480 jobs: {counts}"
    assert counts.get("latents") == n_backbones
    assert counts.get("train_brain") == n_backbones * len(SUBJECTS) * len(cfg["training"]["seeds"])
    assert counts.get("train_ridge") == n_backbones * len(SUBJECTS)
    assert "simulate_subject" not in counts and "bids_run" not in counts


def test_full_size_plan_resources(full_plan: tuple[dict, dict, float, dict]) -> None:
    _, resources, _, _ = full_plan
    for rule, lines in resources.items():
        if rule == "all":
            continue
        for line in lines:
            # a callable resource prints as <TBD> in a dry run: still declared
            assert "mem_mb=" in line and "runtime=" in line, (
                f"rule {rule} declares no mem_mb/runtime: {line!r}"
            )
    no_gpu = [rule for rule in GPU_RULES if not any(re.search(r"\bgpu=[1-9]", x) for x in resources[rule])]
    assert not no_gpu, f"rules without a GPU on the real study: {no_gpu}"


@pytest.mark.slow
def test_reduced_twin_end_to_end(things_meg: Path, tmp_path: Path) -> None:
    """1 subject x 1 session x 2 runs of short simulated recordings through the whole workflow, tiny model."""
    spec = TwinSpec(["BIGMEG1"], ["01"], ["01", "02"], recording="fif", duration_s=60.0)
    bids = make_layout_twin(things_meg / "ds004212", tmp_path / "ds004212", spec)
    image_table = things_meg / "things" / "things_meg_images.tsv"
    stimuli = things.stimuli_from_events(
        things.read_study_events(bids, ["BIGMEG1"], ["01"], ["01", "02"], "main"),
        things.read_image_table(image_table),
    )
    write_fake_stimuli(stimuli, tmp_path / "things_images")
    tiny = load_config(REPO / "config.yaml", REPO / "config" / "tiny.yaml")
    overrides = {
        "study": {"subjects": ["BIGMEG1"], "sessions": ["01"], "runs": ["01", "02"]},
        "backbones": {k: v for k, v in tiny["backbones"].items() if v["kind"] == "handcrafted"},
        "reconstruction": {"generators": ["retrieval"], "backbone": None},
    }
    for section in ("brain_module", "training", "ridge", "evaluation", "report"):
        if section in tiny:
            overrides[section] = tiny[section]
    overrides["training"] = {**overrides.get("training", {}), "backbones": None, "device": "cpu"}
    timeresolved = overrides["evaluation"]["timeresolved"]
    timeresolved["backbones"] = [b for b in timeresolved["backbones"] if b in overrides["backbones"]]
    configfile = things_config(tmp_path, things_meg, bids, **overrides)
    results = tmp_path / "results"
    run_snakemake(results, "all", configfile=configfile, timeout=1200)

    inventory = pd.read_csv(results / "bids_check" / "inventory.tsv", sep="\t", dtype=str)
    assert len(inventory) == 2 and set(inventory["recording_format"]) == {"fif"}
    table = pd.read_csv(results / "stimuli" / "stimuli.tsv", sep="\t")
    assert set(table["image_id"]) == set(stimuli["image_id"])
    trials = pd.read_csv(results / "preprocessed" / "sub-BIGMEG1" / "trials.tsv", sep="\t")
    assert {"train", "test_small", "test_large"} <= set(trials["split"])
    assert "catch" not in set(trials["trial_type"])
    test_concepts = set(table.loc[table["concept_split"] == "test", "concept"])
    assert not set(trials.loc[trials["split"].isin(["train", "val"]), "concept"]) & test_concepts
    assert list((results / "evaluation").rglob("sub-BIGMEG1.tsv"))


def test_renamed_recording_is_explained_before_any_job(things_meg: Path, tmp_path: Path) -> None:
    """A renamed _meg.fif used to stop `snakemake -n` with MissingInputException asking for _meg.ds, before
    the inventory job that would have explained it could run."""
    spec = TwinSpec(["BIGMEG1"], ["01"], ["01", "02"], recording="fif", duration_s=5.0)
    bids = make_layout_twin(things_meg / "ds004212", tmp_path / "ds004212", spec)
    folder = bids / "sub-BIGMEG1" / "ses-01" / "meg"
    stem = "sub-BIGMEG1_ses-01_task-main_run-02"
    (folder / f"{stem}_meg.fif").rename(folder / f"{stem}_meg_copy.fif")
    study = {"subjects": ["BIGMEG1"], "sessions": ["01"], "runs": ["01", "02"]}
    configfile = things_config(tmp_path, things_meg, bids, study=study)
    proc = run_snakemake(tmp_path / "results", "-n", configfile=configfile, check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "MissingInputException" not in out, out[-3000:]
    assert f"1 configured run(s) are incomplete in {bids}" in out
    assert "sub-BIGMEG1 ses-01 run-02: no recording (*_meg.ds / *_meg.fif)" in out
    assert f"found {stem}_meg_copy.fif: rename it to {stem}_meg.fif" in out
