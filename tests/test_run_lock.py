"""One workflow run per results directory; a previous run's live SLURM jobs are not submitted twice."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_snakemake, snakemake_cmd

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


@pytest.mark.parametrize("state", ["PENDING", "RUNNING"])
def test_previous_runs_jobs_are_refused_before_the_slurm_executor_exists(tmp_path, state):
    """The check used to run in onstart, after the SLURM executor was built; on the refused run's exit the
    executor deleted the empty log folders of the old run's queued jobs, which then failed at launch."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    job_line = f"4242|{state}|{REPO}|rule_simulate_stimuli"
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho '{job_line}'\n")
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch must not be called' >&2\nexit 1\n")
    for tool in ("squeue", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    logs = tmp_path / "slurm_logs"
    queued_log_dir = logs / "rule_simulate_stimuli"  # SLURM creates the job's log file only when it starts
    queued_log_dir.mkdir(parents=True)
    results = tmp_path / "results"
    cmd = [
        *snakemake_cmd(), "--executor", "slurm", "--jobs", "1", f"--slurm-logdir={logs}",
        str(results / "stimuli" / "stimuli.tsv"), f"--configfile={REPO / 'config' / 'tiny.yaml'}",
        f"--config=results_dir={results}",
    ]  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "1 SLURM job(s) of a previous run" in out and f"4242 (rule_simulate_stimuli, {state})" in out
    assert "scancel 4242" in out and "sbatch must not be called" not in out
    assert queued_log_dir.is_dir(), "the queued job's log folder was deleted: it would fail at launch"
    assert not (results / run_lock.LOCK_NAME).exists()


def test_dry_run_does_not_check_for_previous_jobs(tmp_path):
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho '4242|PENDING|{REPO}|rule_simulate_stimuli'\n")
    (bin_dir / "squeue").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    cmd = [*snakemake_cmd(), "-n", "--executor", "slurm", "--jobs", "1"]
    cmd += [f"--configfile={REPO / 'config' / 'tiny.yaml'}", f"--config=results_dir={tmp_path / 'results'}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "previous run" not in proc.stdout + proc.stderr, proc.stderr[-3000:]


DENIED, READ_ONLY = PermissionError(13, "Permission denied"), OSError(30, "Read-only file system")


@pytest.mark.parametrize(("method", "error"), [("write_text", DENIED), ("mkdir", READ_ONLY)])
def test_results_dir_that_cannot_be_written_is_named_with_why(tmp_path, monkeypatch, method, error):
    """A read-only results directory used to fail in acquire with a bare OSError (as root, permissions
    cannot make a folder read-only, so the file system's answer is simulated)."""

    def refuse(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(Path, method, refuse)
    with pytest.raises(RunLockError) as err:
        run_lock.acquire(tmp_path / "results", release_at_exit=False)
    msg = str(err.value)
    assert f"results directory {(tmp_path / 'results').resolve()} cannot be written ({error.strerror})" in msg
    assert "--config results_dir=" in msg
