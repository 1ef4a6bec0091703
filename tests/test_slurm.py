"""The tiny workflow on a real (one-node, loopback) SLURM cluster through profiles/slurm.

Opt-in (MEGDECODE_TEST_SLURM=1; CI sets it). Installs slurm-wlm and munge when absent, starts the
daemons (once for the module), runs config/tiny.yaml with `snakemake --profile`, compares the results with a
local run and stops the daemons it started. The cluster has no job accounting (no slurmdbd): the workflow
must notice it and take job status from squeue.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake_cmd
from slurm_cluster import ClusterUnavailable, LocalSlurm, ensure_installed

# Outputs that must be identical between a local and a SLURM run (logs, benchmarks and HTML differ; the
# online replay's tables hold latencies and throughput, measurements of the host).
COMPARED_SUFFIXES = {".tsv", ".npy", ".npz", ".json", ".md", ".tex"}
NOT_COMPARED_PARTS = {"logs", "benchmarks", "qc", "realtime"}


def test_profile_is_documented_and_grows_memory_with_attempts():
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    profile = yaml.safe_load(text)
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    assert "attempt" in str(profile["default-resources"]["mem_mb"])
    assert all("attempt" in str(res["mem_mb"]) for res in profile["set-resources"].values())
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    lines = text.splitlines()
    for key in keys:  # every top-level key has a comment right above it
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        assert lines[index - 1].lstrip().startswith("#"), f"profile key '{key}' has no comment"


def write_test_profile(path: Path) -> Path:
    """profiles/slurm with what a one-node test cluster needs: no GPUs, little memory, quick status checks.

    The status command is left to the workflow: the cluster has no accounting, so sacct cannot work."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["jobs"] = 4
    profile["retries"] = 0
    profile["latency-wait"] = 5
    profile["slurm-init-seconds-before-status-checks"] = 8
    profile["default-resources"] = {"mem_mb": 1000, "runtime": 30}
    profile["set-resources"] = {rule: {"mem_mb": 1000} for rule in profile["set-resources"]}
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(profile))
    return path


# Columns that measure wall time, not results.
TIMING_COLUMNS = {"seconds"}


def comparable_content(path: Path) -> bytes:
    """A file's bytes; for tables, without the columns that record wall time."""
    if path.suffix == ".tsv":
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        return table.drop(columns=TIMING_COLUMNS & set(table.columns)).to_csv(sep="\t", index=False).encode()
    return path.read_bytes()


def comparable_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): comparable_content(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in COMPARED_SUFFIXES and not NOT_COMPARED_PARTS & set(p.parts)
    }


@pytest.fixture(scope="module")
def slurm_cluster():
    """One cluster for the module, memory enforced (jobacct_gather/linux + OverMemoryKill), no accounting."""
    # the daemons' folder must be reachable by user munge, which pytest's private tmp_path is not
    cluster_root = Path(tempfile.mkdtemp(prefix="megdecode-slurm-"))
    try:
        ensure_installed()
        cluster = LocalSlurm(cluster_root, enforce_memory=True)
        cluster.__enter__()
    except ClusterUnavailable as err:
        shutil.rmtree(cluster_root, ignore_errors=True)
        pytest.skip(f"SLURM cannot start here: {err}")
    yield cluster, cluster_root
    cluster.__exit__(None, None, None)
    shutil.rmtree(cluster_root, ignore_errors=True)


def _jobs(cluster: LocalSlurm) -> dict[str, list[str]]:
    """Every job SLURM still lists (MinJobAge keeps finished ones): id -> [state, comment, memory]."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%i|%T|%k|%m"],
        capture_output=True, text=True, env=cluster.env(),
    ).stdout  # fmt: skip
    return {line.split("|")[0]: line.split("|")[1:] for line in out.split()}


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout} s")


def _cancel_first_running(cluster: LocalSlurm, rule: str, proc: subprocess.Popen, timeout: float = 600):
    """scancel the first job of ``rule`` seen RUNNING (Snakemake's SLURM comment: rule_<rule>_...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        out = subprocess.run(
            ["squeue", "--noheader", "--format=%i|%T|%k"], capture_output=True, text=True, env=cluster.env()
        ).stdout
        for line in out.splitlines():
            job_id, state, comment = line.strip().split("|", 2)
            if state == "RUNNING" and comment.startswith(f"rule_{rule}"):
                time.sleep(2)  # let it write something first
                subprocess.run(["scancel", job_id], check=True, env=cluster.env())
                return job_id
        time.sleep(0.5)
    raise AssertionError(f"no running {rule} job seen to cancel")


@pytest.mark.slurm
@pytest.mark.slow
def test_rerun_refused_while_previous_runs_jobs_are_queued_and_those_jobs_still_run(tmp_path, slurm_cluster):
    """kill -9 of the controller while its job is PENDING (the node is drained); the rerun is refused, and
    the queued job later runs and COMPLETES. The refusal used to come after the SLURM executor was built,
    whose shutdown deleted the queued job's empty log folder: it failed at launch (JobLaunchFailure)."""
    cluster, _ = slurm_cluster
    node = ["scontrol", "update", f"NodeName={cluster.host}"]
    results = tmp_path / "results"
    cmd = [
        *snakemake_cmd(), "--profile", str(write_test_profile(tmp_path / "profile")),
        str(results / "stimuli" / "stimuli.tsv"), f"--configfile={REPO / 'config' / 'tiny.yaml'}",
        f"--config=results_dir={results}",
    ]  # fmt: skip
    subprocess.run([*node, "State=DRAIN", "Reason=megdecode-test"], check=True, env=cluster.env())
    try:
        log = tmp_path / "first.log"
        with open(log, "w") as out:
            first = subprocess.Popen(
                cmd, cwd=REPO, env=cluster.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        queued = _wait_for(
            lambda: [i for i, j in _jobs(cluster).items() if j[:2] == ["PENDING", "rule_simulate_stimuli"]],
            120,
            f"a PENDING simulate_stimuli job ({log.read_text()[-2000:]})",
        )
        time.sleep(2)  # the controller has recorded the submission
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        again = subprocess.run(cmd, cwd=REPO, env=cluster.env(), capture_output=True, text=True, timeout=300)
        text = again.stdout + again.stderr
        assert again.returncode != 0, text[-4000:]
        assert "still queued or running" in text and f"{queued[0]} (rule_simulate_stimuli, PENDING)" in text
    finally:
        subprocess.run([*node, "State=RESUME"], check=True, env=cluster.env())
    state = _wait_for(
        lambda: (
            _jobs(cluster)[queued[0]][0] not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
            and _jobs(cluster)[queued[0]][0]
        ),
        300,
        "the queued job's end",
    )
    assert state == "COMPLETED", f"{state}: {cluster.logs()}"
    assert (results / "stimuli" / "stimuli.tsv").is_file()
    # the killed controller left Snakemake's lock of the working directory: remove it for the next test
    subprocess.run([*cmd, "--unlock"], cwd=REPO, env=cluster.env(), capture_output=True, check=True)


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_workflow_on_slurm_with_retries_matches_local_run(tmp_path, tiny_results, slurm_cluster):
    """config/tiny.yaml through the SLURM profile equals a local run byte for byte, although a job is
    cancelled while running and a job is killed for memory: both are retried (one cluster run checks it all).

    The cluster enforces memory (jobacct_gather/linux + OverMemoryKill). report_tables asks for 50 MB on its
    first attempt (far less than Python alone) and 2000 MB on the next; train_brain is scancel-ed mid-run.
    The cluster has no job accounting: a run with the default status command (sacct) used to hang.
    """
    cluster, cluster_root = slurm_cluster
    profile_dir = write_test_profile(tmp_path / "profile")
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    profile["retries"] = 2
    profile["set-resources"]["report_tables"] = {"mem_mb": "50 if attempt == 1 else 2000"}
    (profile_dir / "config.yaml").write_text(yaml.safe_dump(profile))
    results = tmp_path / "results"
    cmd = [
        "timeout", "-k", "20", "1200", *snakemake_cmd(), "--profile", str(profile_dir),
        "all", f"--configfile={REPO / 'config' / 'tiny.yaml'}", f"--config=results_dir={results}",
    ]  # fmt: skip
    log = tmp_path / "snakemake.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=cluster.env(), stdout=out, stderr=subprocess.STDOUT)
        cancelled = _cancel_first_running(cluster, "train_brain", proc)
        proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, f"{text[-6000:]}\n{cluster.logs()}"
    assert "slurm" in text.lower()
    assert "no job accounting" in text and "job status comes from squeue" in text
    by_id = _jobs(cluster)
    slurmd_log = (cluster_root / "slurmd.log").read_text()
    jobs = list(by_id.values())
    state, comment, _ = by_id[cancelled]
    assert state == "CANCELLED", jobs
    assert [j for j in jobs if j[:2] == ["COMPLETED", comment]], f"{comment} not retried: {jobs}"
    tables = [j for j in jobs if j[1] == "rule_report_tables"]
    # killed for memory on the first attempt (FAILED with jobacct_gather, OUT_OF_MEMORY with cgroups) ...
    assert any(j[0] in ("FAILED", "OUT_OF_MEMORY") and j[2] == "50M" for j in tables), tables
    assert "exceeded memory limit" in slurmd_log
    # ... and retried with the memory of the next attempt
    assert ["COMPLETED", "rule_report_tables", "2000M"] in tables, tables
    local, remote = comparable_files(tiny_results), comparable_files(results)
    assert sorted(remote) == sorted(local)
    differing = [name for name in local if local[name] != remote[name]]
    assert not differing, f"results after retries differ from a local run: {differing[:10]}"
