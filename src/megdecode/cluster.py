"""Cluster settings: memory and runtime grow with each retry; job status without SLURM accounting.

Every rule declares its own ``mem_mb`` and ``runtime`` (sized from measurements), so a profile's
``default-resources: mem_mb: "2000 * attempt"`` never applies to them, and a job killed for memory would be
retried with the same memory. :func:`grow_with_attempt` multiplies each rule's own values by ``attempt``
(1 for the first try, 2 for the first retry, ...). Values a profile or the command line sets per rule
(``set-resources``) are left as given: they say themselves how they grow.

A SLURM cluster without an accounting database (no slurmdbd) answers ``sacct`` with an error, or with nothing,
and the executor plugin's default status command (``sacct``) then never sees a job finish: the run hangs.
:func:`choose_slurm_status_command` detects it before the run starts and uses ``squeue`` instead, or says
which profile setting makes ``squeue`` work.
"""

from __future__ import annotations

import logging
import re
import subprocess
from typing import Any

log = logging.getLogger(__name__)

GROWING = ("mem_mb", "runtime")


def _grown(resource: Any) -> Any:
    """A snakemake ``Resource`` whose value is the original one (evaluated as snakemake would) * attempt."""
    from snakemake.resources import Resource

    def value(wildcards, input, attempt, threads, rulename):  # noqa: A002 - snakemake's parameter name
        base = resource.evaluate(wildcards, input=input, attempt=attempt, threads=threads, rulename=rulename)
        raw = base._value  # an int (MB, minutes) once evaluated; anything else is left as it is
        return raw * attempt if isinstance(raw, int) and not isinstance(raw, bool) else raw

    return Resource(resource.name, value)


def grow_with_attempt(workflow: Any, names: tuple[str, ...] = GROWING) -> list[str]:
    """Make every rule's own ``mem_mb``/``runtime`` grow with ``attempt``; returns the rules changed."""
    overwritten = workflow.resource_settings._parsed_overwrite_resources or {}
    changed = []
    for rule in workflow.rules:
        if rule.name == "all":
            continue
        for name in names:
            if name not in rule.resources or name in overwritten.get(rule.name, {}):
                continue
            rule.resources[name] = _grown(rule.resources[name])
            changed.append(rule.name)
    return sorted(set(changed))


class SlurmSettingsError(RuntimeError):
    """The SLURM executor's settings cannot work on this cluster; the message says what to set."""


def _output(cmd: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def slurm_config(scontrol: str = "scontrol") -> dict[str, str]:
    """``scontrol show config`` as ``{key: value}`` ({} when it cannot be read)."""
    proc = _output([scontrol, "show", "config"])
    if proc is None or proc.returncode != 0:
        return {}
    pairs = (line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def min_job_age_seconds(config: dict[str, str]) -> int | None:
    """How long (s) squeue keeps listing a finished job (``MinJobAge``: "300 sec", "300" or "1h")."""
    match = re.match(r"^(\d+)\s*([a-zA-Z]*)", config.get("MinJobAge", ""))
    if not match:
        return None
    return int(match.group(1)) * (3600 if match.group(2).lower() in ("h", "hour", "hours") else 1)


def job_accounting_problem(config: dict[str, str], sacct: str = "sacct") -> str | None:
    """Why ``sacct`` cannot report this cluster's jobs (no accounting database), or None when it can."""
    storage = config.get("AccountingStorageType", "unknown")
    if storage in ("accounting_storage/none", "(null)", "none", ""):
        return f"AccountingStorageType = {storage or '(empty)'}"
    proc = _output([sacct, "--noheader", "-X", "--format=JobIdRaw", "--starttime", "now"])
    if proc is None:
        return "sacct cannot be run"
    if proc.returncode != 0:
        return f"sacct fails: {proc.stderr.strip() or f'exit status {proc.returncode}'}"
    return None


def choose_slurm_status_command(settings: Any, sacct: str = "sacct", scontrol: str = "scontrol") -> None:
    """Make the SLURM executor's ``settings.status_command`` one that can see jobs finish on this cluster.

    With job accounting, nothing changes. Without it, ``squeue`` is used; the plugin itself goes back to
    ``sacct`` when ``MinJobAge`` (how long squeue lists finished jobs) is under 3 x
    ``init_seconds_before_status_checks``: then :class:`SlurmSettingsError` says which value to set.
    """
    config = slurm_config(scontrol)
    problem = job_accounting_problem(config, sacct)
    if problem is None:
        return
    min_age = min_job_age_seconds(config)
    init = int(getattr(settings, "init_seconds_before_status_checks", 40) or 40)
    if min_age is None or min_age < 3 * init:
        age = "unknown (scontrol show config does not say)" if min_age is None else f"{min_age} s"
        if min_age is not None and min_age >= 3:
            fix = (
                f"Set slurm-init-seconds-before-status-checks: {min_age // 3} and "
                "slurm-status-command: squeue in your profile"
            )
        else:
            fix = (
                "Ask the cluster's administrators for job accounting (slurmdbd) or a MinJobAge of 120 s "
                "or more"
            )
        raise SlurmSettingsError(
            f"this SLURM cluster has no job accounting ({problem}), so sacct cannot tell when a job "
            "finished; squeue can if it lists finished jobs for at least 3 x "
            f"slurm-init-seconds-before-status-checks ({3 * init} s), and its MinJobAge is {age}: the run "
            f"would never see its jobs finish. {fix}, then run the same command again"
        )
    if getattr(settings, "status_command", None) != "squeue":
        log.warning(
            "this SLURM cluster has no job accounting (%s): job status comes from squeue instead of sacct "
            "(finished jobs stay listed for MinJobAge %d s). Add `slurm-status-command: squeue` to your "
            "profile to make this explicit.",
            problem,
            min_age,
        )
        settings.status_command = "squeue"
