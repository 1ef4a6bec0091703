"""Structure of the workflow itself: every rule declares what a cluster and a reader need; envs match pins."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from conftest import REPO

RULE_FILES = sorted((REPO / "rules").glob("*.smk"))
REQUIRED = ("log:", "benchmark:", "threads:", "mem_mb=", "runtime=", "conda:")


def rule_blocks() -> dict[str, str]:
    """Text of each `rule name:` block (up to the next rule or end of file), keyed by rule name."""
    blocks = {}
    for path in RULE_FILES:
        text = path.read_text()
        starts = [(m.start(), m.group(1)) for m in re.finditer(r"^\s*rule (\w+):", text, flags=re.M)]
        ends = [start for start, _ in starts[1:]] + [len(text)] if starts else []
        for (start, name), end in zip(starts, ends, strict=True):
            blocks[name] = text[start:end]
    return blocks


def test_rule_files_exist_per_stage():
    stages = {p.stem for p in RULE_FILES}
    assert {
        "simulate",
        "bids",
        "preprocess",
        "latents",
        "train",
        "evaluate",
        "reconstruct",
        "report",
    } <= stages


@pytest.mark.parametrize("name", sorted(rule_blocks()))
def test_rule_declares_log_benchmark_and_resources(name):
    block = rule_blocks()[name]
    missing = [key for key in REQUIRED if key not in block]
    assert not missing, f"rule {name} lacks {missing}"
    assert "script:" in block, f"rule {name} must call one thin script"


# The config slice each rule may read through ``params:`` (section or ``section.key``): its own stage's
# section, the master seed and the study's labels. A rule that reads more reruns when unrelated keys change.
#: what finds an image's onset online (trigger channel and codes, photodiode)
ONLINE_ONSETS = {
    "bids.stim_channel",
    "bids.trigger_codes",
    "bids.photodiode_channel",
    "bids.photodiode_max_lag_s",
    "bids.photodiode_threshold",
}
#: what a job that simulates its own epochs and fits both decoders reads (learning curve, recipe study)
SIMULATED_DECODERS = {"simulation", "preprocessing", "brain_module", "training", "ridge", "seed"}
OWN_SLICE = {
    "simulate_stimuli": {"simulation", "seed"},
    "simulate_subject": {"simulation", "seed", "study"},
    "bids_run": {"bids", "study"},
    "bids_dataset": {"bids", "study"},
    "bids_inventory": {"study"},
    "stimuli_table": {"study"},
    "nsd_stimuli": {"nsd", "study", "seed"},
    "nsd_subject": {"nsd", "study", "seed"},
    "things_eeg2_bids_session": {"things_eeg2"},
    "things_eeg2_bids_dataset": {"things_eeg2"},
    "things_eeg2_preprocess": {"things_eeg2"},
    "things_eeg2_simulate_images": {"simulation", "seed"},
    "things_eeg2_simulate_subject": {"things_eeg2", "simulation", "eeg", "seed"},
    "things_eeg2_stimuli": {"things_eeg2", "simulation", "seed"},
    "things_eeg2_subject": {"things_eeg2", "preprocessing", "training", "seed"},
    "preprocess_run": {"preprocessing"},
    "preprocess_subject": {"preprocessing", "seed", "training.validation"},
    "preprocess_description": {"preprocessing"},
    "build_random_backbone": {"backbones", "seed"},
    "latents": {"backbones"},
    "train_brain": {"brain_module", "training", "seed"},
    "train_brain_shared": {"brain_module", "training", "seed", "study"},
    "train_brain_window": {"brain_module", "training", "seed"},
    "train_ridge": {"ridge"},
    "evaluate_retrieval": {"evaluation", "seed"},
    "evaluate_timeresolved": {"evaluation", "seed"},
    "train_decoder": {"reconstruction", "seed"},
    "reconstruct": {"reconstruction", "seed"},
    "reconstruction_metrics": {"reconstruction", "backbones", "study"},
    "attribute_readout": {"reconstruction", "seed"},
    "reconstruction_summary": set(),
    "report_tables": {"report"},
    "report_figures": {"report", "bids.stimulus_duration_s"},
    "report_examples": {"report"},
    "realtime_replay": {"realtime", *ONLINE_ONSETS},
    "learning_curve_job": {"learning_curve", *SIMULATED_DECODERS},
    "learning_curve_concept_renders": {"learning_curve", "simulation.stimuli", "seed"},
    "learning_curve_summary": {"learning_curve", "seed"},
    "learning_curve_fmri_voxels": {"fmri", "seed"},
    "learning_curve_fmri_job": {"learning_curve", "fmri", "seed"},
    "learning_curve_eeg_job": {
        "learning_curve",
        "eeg",
        "things_eeg2.preprocessing",
        *SIMULATED_DECODERS - {"preprocessing"},
    },
    "simulate_fmri": {"fmri", "seed"},
    "fmri_train_ridge": {"fmri"},
    "fmri_train_mlp": {"fmri", "seed"},
    "fmri_evaluate_retrieval": {"evaluation", "seed"},
    "fmri_ceiling": {"fmri", "evaluation", "seed"},
    "fmri_reconstruct": {"reconstruction", "fmri", "seed"},
    "fmri_reconstruction_metrics": {"reconstruction", "backbones"},
    "realtime_model": {"realtime.gallery", *ONLINE_ONSETS},
    **{
        f"recipe_study_{job}": {"recipe_study", *SIMULATED_DECODERS}
        for job in ("ridge", "ceiling", "select", "brain", "shared", "crosscheck")
    },
    "recipe_study_summary": {"recipe_study", "seed"},
    "recipe_study_crosscheck_summary": {"recipe_study", "seed"},
    "fmri_compare": {"fmri", "report", "reconstruction.model", "evaluation", "seed"},
}
CONFIG_REF = re.compile(r'config(?:\[\s*"(\w+)"\s*\]|\.get\(\s*"(\w+)"[^)]*\))(?:\[\s*"(\w+)"\s*\])?')


def _definitions() -> dict[str, str]:
    """Module-level names (``NAME = ...``) and helper functions of the rule files, with their source."""
    text = "\n".join(p.read_text() for p in RULE_FILES)
    found = {m[1]: m[2] for m in re.finditer(r"^([A-Z_][A-Z0-9_]*)\s*=\s*(.*?)(?=^\S|\Z)", text, re.M | re.S)}
    found |= {m[1]: m[2] for m in re.finditer(r"^def (\w+)\(.*?\n(.*?)(?=^\S|\Z)", text, re.M | re.S)}
    return found


def config_reads(source: str, definitions: dict[str, str], seen: tuple[str, ...] = ()) -> set[str]:
    """Config paths (``section`` or ``section.key``) that ``source`` reads, following names it uses."""
    reads = {(a or b) + (f".{c}" if c else "") for a, b, c in CONFIG_REF.findall(source)}
    for name in set(re.findall(r"\b([A-Za-z_]\w*)\b", source)) - set(seen):
        if name in definitions:
            reads |= config_reads(definitions[name], definitions, (*seen, name))
    return reads


def params_block(block: str) -> str:
    match = re.search(r"^\s*params:\n(.*?)(?=^\s{4}\w+:|\Z)", block, flags=re.M | re.S)
    return match.group(1) if match else ""


def test_config_reads_follow_names_and_helpers():
    defs = {
        "TRAIN": 'config["training"]',
        "helper": "    return TRAIN, config['x']\n",
        "B": 'config["bids"]["k"]',
    }
    assert config_reads("cfg=TRAIN, other=B", defs) == {"training", "bids.k"}
    assert config_reads("cfg=helper", defs) == {"training"}  # single-quoted keys are not config reads here


@pytest.mark.parametrize("name", sorted(rule_blocks()))
def test_rule_params_read_only_its_own_config_slice(name):
    assert name in OWN_SLICE, f"rule {name}: declare the config slice it may read in OWN_SLICE"
    reads = config_reads(params_block(rule_blocks()[name]), _definitions())
    outside = {r for r in reads if r not in OWN_SLICE[name] and r.split(".")[0] not in OWN_SLICE[name]}
    assert not outside, f"rule {name} reads config outside its slice through params: {sorted(outside)}"


def test_conda_env_parses_and_pins_torch_like_pyproject():
    env = yaml.safe_load((REPO / "envs" / "megdecode.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert torch_pin == "torch==2.13.0"
    assert torch_pin in pip
    assert "-e .." in pip  # the package itself, with every pin of pyproject.toml
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.startswith("python=3.")


def test_snakemake_lint_is_clean():
    """`snakemake --lint` (CI runs it too) finds nothing; e.g. a docstring that reads like a rule header in an
    input-functions file counts as mixing rules and functions."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
