"""One workflow run per results directory; a previous run's live SLURM jobs are not submitted twice."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_snakemake

from megdecode import run_lock
from megdecode.run_lock import RunLockError


@pytest.fixture
def other_process():
    """A live process that is not this one (the holder of someone else's lock)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_second_run_on_a_results_dir_is_refused_naming_the_holder(tmp_path, other_process):
    run_lock.acquire(tmp_path, pid=other_process.pid, release_at_exit=False)
    with pytest.raises(RunLockError) as err:
        run_lock.acquire(tmp_path, release_at_exit=False)
    msg = str(err.value)
    assert f"results directory {tmp_path.resolve()} is in use" in msg
    assert f"pid {other_process.pid} on host {socket.gethostname()}" in msg
    assert str(tmp_path.resolve() / run_lock.LOCK_NAME) in msg
    assert not run_lock.release(tmp_path)  # not ours: kept
    assert (tmp_path / run_lock.LOCK_NAME).is_file()


def test_stale_lock_of_a_killed_run_is_replaced_with_a_warning(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_lock.acquire(tmp_path, pid=dead.pid, release_at_exit=False)
    with caplog.at_level(logging.WARNING, logger="megdecode.run_lock"):
        path = run_lock.acquire(tmp_path, release_at_exit=False)
    assert "removing stale lock" in caplog.text and f"pid {dead.pid}" in caplog.text
    assert json.loads(path.read_text())["pid"] != dead.pid
    assert run_lock.release(tmp_path) and not path.exists()


def test_lock_from_another_host_is_not_guessed_stale(tmp_path):
    holder = {"pid": 1, "host": "node-elsewhere", "started": "then", "workdir": "/x"}
    (tmp_path / run_lock.LOCK_NAME).write_text(json.dumps(holder))
    with pytest.raises(RunLockError, match=r"host node-elsewhere.*another host.*delete"):
        run_lock.acquire(tmp_path, release_at_exit=False)


def test_workflow_refuses_a_results_dir_in_use_then_runs_once_it_is_free(tmp_path, other_process):
    results = tmp_path / "results"
    target = str(results / "stimuli" / "stimuli.tsv")
    run_lock.acquire(results, pid=other_process.pid, release_at_exit=False)
    proc = run_snakemake(results, target, cores=1, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"results directory {results.resolve()} is in use" in out and str(other_process.pid) in out
    assert not Path(target).exists()
    other_process.kill()
    other_process.wait()
    run_snakemake(results, target, cores=1)  # the holder is gone: stale lock replaced, job runs
    assert Path(target).is_file() and not (results / run_lock.LOCK_NAME).exists()


def _fake_squeue(tmp_path: Path, lines: list[str]) -> str:
    script = tmp_path / "squeue"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    script.chmod(0o755)
    return str(script)


def test_previous_runs_live_slurm_jobs_are_detected(tmp_path):
    """After kill -9 of the controller its SLURM jobs keep running; the rerun must not submit them again."""
    here = tmp_path / "wf"
    here.mkdir()
    squeue = _fake_squeue(
        tmp_path,
        [
            f"101|RUNNING|{here}|rule_train_brain_wildcards_sub-01",
            f"102|PENDING|{here}|rule_latents",
            f"103|RUNNING|{tmp_path}|rule_latents",  # another working directory
            f"104|RUNNING|{here}|someone else's job",
        ],
    )
    jobs = run_lock.live_slurm_jobs(here, {"train_brain", "latents"}, squeue=squeue)
    assert [j["id"] for j in jobs] == ["101", "102"]
    with pytest.raises(RunLockError, match=r"2 SLURM job\(s\) of a previous run.*scancel 101 102"):
        run_lock.refuse_if_previous_jobs_run(here, {"train_brain", "latents"}, squeue=squeue)
    run_lock.refuse_if_previous_jobs_run(here, {"other_rule"}, squeue=squeue)  # not this workflow's
    assert run_lock.live_slurm_jobs(here, None, squeue=str(tmp_path / "missing")) == []
