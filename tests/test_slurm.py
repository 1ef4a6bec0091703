"""The tiny workflow on a real (one-node, loopback) SLURM cluster through profiles/slurm.

Opt-in (MEGDECODE_TEST_SLURM=1; CI sets it). Installs slurm-wlm and munge when absent, starts the
daemons, runs config/tiny.yaml with `snakemake --profile`, compares the results with a local run
and stops the daemons it started.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake_cmd
from slurm_cluster import ClusterUnavailable, LocalSlurm, ensure_installed

# Outputs that must be identical between a local and a SLURM run (logs, benchmarks and HTML differ).
COMPARED_SUFFIXES = {".tsv", ".npy", ".npz", ".json", ".md", ".tex"}
NOT_COMPARED_PARTS = {"logs", "benchmarks", "qc"}


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
    """profiles/slurm with what a one-node test cluster needs: no GPUs, little memory, squeue status."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["jobs"] = 4
    profile["retries"] = 0
    profile["latency-wait"] = 5
    profile["slurm-status-command"] = "squeue"
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


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_workflow_on_slurm_matches_local_run(tmp_path, tiny_results):
    # the daemons' folder must be reachable by user munge, which pytest's private tmp_path is not
    cluster_root = Path(tempfile.mkdtemp(prefix="megdecode-slurm-"))
    try:
        ensure_installed()
        cluster = LocalSlurm(cluster_root)
        cluster.__enter__()
    except ClusterUnavailable as err:
        shutil.rmtree(cluster_root, ignore_errors=True)
        pytest.skip(f"SLURM cannot start here: {err}")
    try:
        profile = write_test_profile(tmp_path / "profile")
        results = tmp_path / "results"
        cmd = [
            "timeout", "-k", "20", "900", *snakemake_cmd(), "--profile", str(profile),
            "all", f"--configfile={REPO / 'config' / 'tiny.yaml'}", f"--config=results_dir={results}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, cwd=REPO, env=cluster.env(), capture_output=True, text=True)
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}\n{cluster.logs()}"
        assert "slurm" in (proc.stdout + proc.stderr).lower()
    finally:
        cluster.__exit__(None, None, None)
        shutil.rmtree(cluster_root, ignore_errors=True)
    local, remote = comparable_files(tiny_results), comparable_files(results)
    assert local, "the local run produced nothing to compare"
    assert sorted(remote) == sorted(local)
    differing = [name for name in local if local[name] != remote[name]]
    assert not differing, f"SLURM and local results differ: {differing[:10]}"
