"""The settings Snakemake is really run with, as it parses them from the profiles (no workflow run)."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

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
