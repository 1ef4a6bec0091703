"""One workflow run per results directory, and no second copy of a job a previous run still runs.

Snakemake's own lock covers one working directory: two checkouts whose configs share ``results_dir``
would rerun each other's jobs. :func:`acquire` puts a lock file in ``results_dir`` naming the holder
(pid, host, start time, working directory); a second run refuses with that name. A lock whose process is
gone (a ``kill -9``ed run on this host) is stale: it is removed with a warning. A lock from another host
cannot be checked from here, so the message says how to remove it by hand.

:func:`live_slurm_jobs` lists SLURM jobs that a previous controller (killed with ``kill -9``) left queued or
running in this working directory, so that a rerun does not submit the same jobs again beside them.

:func:`check_before_jobs_start` runs these checks before Snakemake builds its executor: a run refused after
that point lets the SLURM executor's shutdown delete the (still empty) log folders of the old run's queued
jobs, which then fail at launch.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = ".megdecode-run.lock"


class RunLockError(RuntimeError):
    """Another run holds the results directory, or a previous run's cluster jobs are still running."""


def lock_path(results_dir: Path | str) -> Path:
    return Path(results_dir).resolve() / LOCK_NAME


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat, counted after the command name


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _start_time(pid)
    return start is None or now is None or now == start


def _holder(pid: int | None = None) -> dict[str, Any]:
    pid = os.getpid() if pid is None else pid
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "proc_start": _start_time(pid),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "workdir": os.getcwd(),
    }


def read_holder(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def holder_is_alive(holder: dict[str, Any]) -> bool | None:
    """True/False for a holder on this host; None when it runs on another host (cannot be checked)."""
    if holder.get("host") != socket.gethostname():
        return None
    return _alive(int(holder["pid"]), holder.get("proc_start"))


def describe(holder: dict[str, Any]) -> str:
    return (
        f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')} "
        f"from {holder.get('workdir')}"
    )


def acquire(results_dir: Path | str, pid: int | None = None, release_at_exit: bool = True) -> Path:
    """Take the results directory's lock for this process, or raise :class:`RunLockError` naming the holder
    (or saying why the directory cannot be written).

    A stale lock (its process on this host is gone) is replaced, with a warning.
    """
    path = lock_path(results_dir)
    mine = _holder(pid)
    for _ in range(3):
        tmp = path.with_name(f"{LOCK_NAME}.{mine['host']}.{mine['pid']}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(mine, indent=2) + "\n")
        except OSError as err:
            raise RunLockError(
                f"results directory {path.parent} cannot be written ({err.strerror or err}): every output of "
                "the workflow goes there. Give a results_dir you can write to (in your config, or "
                f"--config results_dir=<folder>), or make {path.parent} writable, then run the same command "
                "again"
            ) from None
        try:
            os.link(tmp, path)  # atomic: fails when the lock exists
            taken = True
        except FileExistsError:
            taken = False
        finally:
            tmp.unlink(missing_ok=True)
        if taken:
            if release_at_exit:
                atexit.register(release, results_dir, mine["pid"])
            return path
        holder = read_holder(path)
        if holder is None:  # being written by another run this instant, or garbage: look again
            time.sleep(0.2)
            holder = read_holder(path)
            if holder is None:
                raise RunLockError(
                    f"results directory {path.parent} has an unreadable lock file {path}; if no other run "
                    "uses this directory, delete that file and run the same command again"
                )
        if holder.get("pid") == mine["pid"] and holder.get("host") == mine["host"]:
            return path
        alive = holder_is_alive(holder)
        if alive is False:
            log.warning(
                "removing stale lock %s of a run that is no longer running (%s); it was interrupted "
                "(for example killed), and its unfinished jobs are rerun now",
                path,
                describe(holder),
            )
            path.unlink(missing_ok=True)
            continue
        where = "" if alive else " (on another host: it cannot be checked from here)"
        raise RunLockError(
            f"results directory {path.parent} is in use by another workflow run: {describe(holder)}"
            f"{where}. Two runs on one results_dir would redo and delete each other's outputs. Wait for "
            "that run to finish, or give this run another results_dir. If that run is gone (for example "
            f"its machine crashed), delete {path} and run the same command again."
        )
    raise RunLockError(f"could not take the lock {path}; run the same command again")


def release(results_dir: Path | str, pid: int | None = None) -> bool:
    """Remove the lock if this process (or ``pid``) on this host holds it; True when removed."""
    path = lock_path(results_dir)
    holder = read_holder(path)
    pid = os.getpid() if pid is None else pid
    if holder and holder.get("pid") == pid and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
        return True
    return False


def live_slurm_jobs(workdir: Path | str, rules: set[str] | None = None, squeue: str = "squeue") -> list[dict]:
    """This user's queued or running SLURM jobs submitted by Snakemake from ``workdir``.

    Snakemake's SLURM executor submits each job with ``-D <workdir>`` and ``--comment rule_<rule>...``.
    Called before this run submits anything, every such job belongs to an earlier controller.
    ``rules`` limits the match to this workflow's rule names. Returns [] when squeue is not available.
    """
    try:
        proc = subprocess.run(
            [squeue, "--me", "--noheader", "--states=PENDING,RUNNING,CONFIGURING,COMPLETING",
             "--format=%i|%T|%Z|%k"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("cannot list SLURM jobs (%s); not checking for jobs of a previous run", err)
        return []
    if proc.returncode != 0:
        log.warning("squeue failed (%s); not checking for jobs of a previous run", proc.stderr.strip())
        return []
    workdir = str(Path(workdir).resolve())
    jobs = []
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) != 4:
            continue
        job_id, state, job_dir, comment = parts
        if not comment.startswith("rule_") or str(Path(job_dir).resolve()) != workdir:
            continue
        rule = comment[len("rule_") :].split("_wildcards_")[0]
        if rules is not None and rule not in rules:
            continue
        jobs.append({"id": job_id, "state": state, "rule": rule, "comment": comment})
    return jobs


def refuse_if_previous_jobs_run(workdir: Path | str, rules: set[str], squeue: str = "squeue") -> None:
    """Raise :class:`RunLockError` when a previous run's SLURM jobs still run (they write our outputs)."""
    jobs = live_slurm_jobs(workdir, rules, squeue)
    if not jobs:
        return
    ids = " ".join(j["id"] for j in jobs)
    shown = ", ".join(f"{j['id']} ({j['comment']}, {j['state']})" for j in jobs[:5])
    more = f" and {len(jobs) - 5} more" if len(jobs) > 5 else ""
    raise RunLockError(
        f"{len(jobs)} SLURM job(s) of a previous run of this workflow are still queued or running in "
        f"{Path(workdir).resolve()}: {shown}{more}. Submitting them again would run two copies that write "
        "the same outputs. Either wait until they have finished (`squeue --me`) or cancel them "
        f"(`scancel {ids}`), then run the same command again: finished outputs are kept, the rest rerun."
    )


def check_before_jobs_start(workflow: Any, results_dir: Path | str) -> None:
    """Check, before Snakemake builds any executor, that this run may start jobs; raise ``WorkflowError``.

    Wraps ``workflow.execute`` (called once per run, with the executor plugin chosen but not yet built).
    A run that starts jobs (not a dry run, not a job spawned by another run) is refused while a previous
    run's SLURM jobs are queued or running here, gets a SLURM status command that works on this cluster
    (:func:`megdecode.cluster.choose_slurm_status_command`), then takes the results directory's lock.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake_interface_executor_plugins.settings import ExecMode

    from megdecode.cluster import SlurmSettingsError, choose_slurm_status_command

    execute = workflow.execute

    def checked_execute(*args: Any, **kwargs: Any) -> Any:
        plugin = kwargs.get("executor_plugin", args[0] if args else None)
        settings = kwargs.get("executor_settings", args[1] if len(args) > 1 else None)
        dry = plugin is None or plugin.common_settings.dryrun_exec
        if not dry and workflow.exec_mode == ExecMode.DEFAULT:
            try:
                if plugin.name == "slurm":
                    refuse_if_previous_jobs_run(workflow.workdir_init, {r.name for r in workflow.rules})
                    choose_slurm_status_command(settings)
                acquire(results_dir)
            except (RunLockError, SlurmSettingsError) as err:
                raise WorkflowError(str(err)) from None
        return execute(*args, **kwargs)

    workflow.execute = checked_execute
