"""BIDS paths of a run as plain strings (no mne import), for the rule files and downstream stages.

:mod:`megdecode.bids` builds the same paths with ``mne_bids.BIDSPath``; the tests check they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: keys of the ``bids`` config section that only the dataset-level job reads
DATASET_KEYS = ("dataset_name", "authors", "license")


def run_stem(subject: str, session: str, run: str, task: str) -> str:
    """ds004212 file stem of one run: ``sub-X_ses-Y_task-T_run-Z``."""
    return f"sub-{subject}_ses-{session}_task-{task}_run-{run}"


def run_files(
    bids_root: str, subject: str, session: str, run: str, task: str, simulated: bool
) -> dict[str, str]:
    """``{'raw', 'events'}`` of one run.

    ``_meg.fif`` when converted from a simulation; else the CTF ``_meg.ds``, or a ``_meg.fif`` standing in
    for it when only that exists (a dataset converted to FIF).
    """
    base = f"{bids_root}/sub-{subject}/ses-{session}/meg/{run_stem(subject, session, run, task)}"
    raw = base + "_meg.fif"
    if not simulated and (Path(base + "_meg.ds").exists() or not Path(raw).exists()):
        raw = base + "_meg.ds"
    return {"raw": raw, "events": base + "_events.tsv"}


def run_files_function(bids_root: str, task: str, simulated: bool) -> Callable[[Any], dict[str, str]]:
    """A Snakemake input function ``f(wildcards) -> {'raw', 'events'}`` for the wildcards' run."""

    def bids_run_files(wildcards: Any) -> dict[str, str]:
        return run_files(bids_root, wildcards.subject, wildcards.session, wildcards.run, task, simulated)

    return bids_run_files
