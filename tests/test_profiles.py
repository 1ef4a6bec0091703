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
            if not rule.output:  # target rules (all, learning_curve, ...): no job of their own
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


def _fake_tools(tmp_path, sacct_ok: bool, min_job_age: str, accounting: str = "accounting_storage/slurmdbd"):
    """Fake ``sacct`` and ``scontrol`` in ``tmp_path``: sacct succeeds or fails as without slurmdbd."""
    sacct = tmp_path / "sacct"
    sacct.write_text(
        "#!/bin/sh\nexit 0\n"
        if sacct_ok
        else "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n"
    )
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(
        f"#!/bin/sh\necho 'AccountingStorageType = {accounting}'\necho 'MinJobAge = {min_job_age}'\n"
    )
    for tool in (sacct, scontrol):
        tool.chmod(0o755)
    return {"sacct": str(sacct), "scontrol": str(scontrol)}


def _settings(status="sacct", init=20):
    from types import SimpleNamespace

    return SimpleNamespace(status_command=status, init_seconds_before_status_checks=init)


def test_cluster_without_accounting_uses_squeue_for_job_status(tmp_path, caplog):
    """Without slurmdbd, sacct fails silently and the controller never saw jobs finish (it hung)."""
    import logging

    from megdecode.cluster import choose_slurm_status_command

    settings = _settings()
    with caplog.at_level(logging.WARNING, logger="megdecode.cluster"):
        choose_slurm_status_command(settings, **_fake_tools(tmp_path, sacct_ok=False, min_job_age="300 sec"))
    assert settings.status_command == "squeue"
    assert "no job accounting" in caplog.text and "slurm-status-command: squeue" in caplog.text
    # a config that says accounting_storage/none is believed even when sacct exits 0 (some versions do)
    settings = _settings()
    tools = _fake_tools(tmp_path, sacct_ok=True, min_job_age="300", accounting="accounting_storage/none")
    choose_slurm_status_command(settings, **tools)
    assert settings.status_command == "squeue"


def test_cluster_with_accounting_keeps_sacct(tmp_path):
    from megdecode.cluster import choose_slurm_status_command

    settings = _settings()
    choose_slurm_status_command(settings, **_fake_tools(tmp_path, sacct_ok=True, min_job_age="300 sec"))
    assert settings.status_command == "sacct"


def test_cluster_without_accounting_and_short_min_job_age_says_what_to_set(tmp_path):
    """squeue forgets finished jobs after MinJobAge; the plugin then goes back to sacct, which cannot work."""
    from megdecode.cluster import SlurmSettingsError, choose_slurm_status_command

    with pytest.raises(SlurmSettingsError) as err:
        choose_slurm_status_command(_settings(init=40), **_fake_tools(tmp_path, False, min_job_age="60 sec"))
    msg = str(err.value)
    assert "(120 s), and its MinJobAge is 60 s" in msg
    assert "slurm-init-seconds-before-status-checks: 20 and slurm-status-command: squeue" in msg
