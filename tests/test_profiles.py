"""The settings Snakemake is really run with, as it parses them from the profiles (no workflow run)."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, parsed_workflow

SLURM = REPO / "profiles" / "slurm" / "config.yaml"
DEFAULT = REPO / "profiles" / "default" / "config.yaml"


def parsed(monkeypatch, *argv: str):
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)  # profiles/default is found relative to the working directory, as for a user
    return parse_args([*argv, "-n"])[1]


def _attr(key: str) -> str:
    return key.replace("-", "_")


def test_slurm_profile_settings_are_in_force_with_the_workflow_profile(monkeypatch):
    """profiles/default is applied after --profile: it must not override what profiles/slurm sets."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    args = parsed(monkeypatch, "--profile", "profiles/slurm")
    slurm = yaml.safe_load(SLURM.read_text())
    assert args.keep_going is True and args.latency_wait == 60
    for key in ("keep-going", "latency-wait", "retries", "jobs", "rerun-incomplete", "show-failed-logs"):
        assert getattr(args, _attr(key)) == slurm[key], key


def test_default_profile_sets_nothing_a_cluster_profile_sets_differently():
    default = yaml.safe_load(DEFAULT.read_text())
    slurm = yaml.safe_load(SLURM.read_text())
    clash = {k: (default[k], slurm[k]) for k in set(default) & set(slurm) if default[k] != slurm[k]}
    assert not clash, f"profiles/default would override profiles/slurm: {clash}"


def test_local_run_keeps_its_defaults(monkeypatch):
    args = parsed(monkeypatch)
    assert args.keep_going is False and args.latency_wait == 5 and args.rerun_incomplete is True


def test_every_rule_grows_memory_and_runtime_with_attempt(tmp_path, monkeypatch):
    """Rules declare their own mem_mb/runtime, so a profile's default-resources never scales them."""
    from snakemake.iocontainers import Wildcards

    class Input(list):
        size_mb = 100.0  # rules that size themselves from their inputs

    monkeypatch.chdir(REPO)
    tiny = [REPO / "config" / "tiny.yaml"]
    with parsed_workflow(tiny, {"results_dir": str(tmp_path / "results")}) as workflow:
        config = workflow.globals["config"]
        values = {"backbone": next(iter(config["backbones"])), "seed": "0"}
        values["window"] = next(iter(workflow.globals["PLAN"].windows), "w")
        checked = []
        for rule in workflow.rules:
            if rule.name in ("all", "learning_curve"):  # target rules: no job of their own
                continue
            wildcards = Wildcards(fromdict={w: values.get(w, "01") for w in rule.wildcard_names})
            first, second = (rule.expand_resources(wildcards, Input(), attempt) for attempt in (1, 2))
            for name in ("mem_mb", "runtime"):
                assert second[name] == 2 * first[name], (rule.name, name, first[name], second[name])
            checked.append(rule.name)
        assert {"train_brain_window", "train_brain", "preprocess_run", "latents"} <= set(checked)


def test_docs_say_how_to_resume_after_kill_9():
    text = (REPO / "docs" / "cluster.md").read_text()
    section = text.split("## Resuming after a crash", 1)[1].split("\n## ", 1)[0]
    for needed in ("--unlock", "the same command", "squeue --me", "scancel", ".megdecode-run.lock"):
        assert needed in section or needed in text, needed
