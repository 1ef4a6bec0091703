"""BIDS paths of a run as plain strings (no mne import), for the rule files and downstream stages.

:mod:`megdecode.bids` builds the same paths with ``mne_bids.BIDSPath``; the tests check they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def _run_problems(bids_root: str, subject: str, session: str, run: str, task: str) -> list[str]:
    """What a configured run of an existing dataset lacks (recording, events); a renamed file is named."""
    folder = Path(bids_root) / f"sub-{subject}" / f"ses-{session}" / "meg"
    stem = run_stem(subject, session, run, task)
    name = f"sub-{subject} ses-{session} run-{run}"
    problems = []
    if not ((folder / f"{stem}_meg.ds").is_dir() or (folder / f"{stem}_meg.fif").is_file()):
        others = sorted(
            p.name
            for p in folder.glob(f"{stem}*")  # nothing when the folder does not exist
            if p.name != f"{stem}_meg.json" and ("_meg" in p.name or p.suffix in (".fif", ".ds"))
        )
        hint = "".join(
            f"; found {other}: rename it to {stem}_meg{'.ds' if '.ds' in other else '.fif'}"
            for other in others
        )
        problems.append(f"{name}: no recording (*_meg.ds / *_meg.fif){hint}")
    if not (folder / f"{stem}_events.tsv").is_file():
        problems.append(f"{name}: no events.tsv")
    return problems


def check_dataset_complete(
    bids_root: str, subjects: Sequence[str], sessions: Sequence[str], runs: Sequence[str], task: str
) -> None:
    """Raise FileNotFoundError naming every configured run of an existing dataset without recording or events.

    Checked when the workflow starts (file names only), so a missing or renamed file is explained before
    Snakemake looks for a run's inputs; the inventory job checks the contents.
    """
    if not Path(bids_root).is_dir():
        raise FileNotFoundError(
            f"BIDS root {bids_root} does not exist; set study.bids_root to a downloaded ds004212"
        )
    problems = [
        problem
        for subject in subjects
        for session in sessions
        for run in runs
        for problem in _run_problems(bids_root, subject, session, run, task)
    ]
    if problems:
        n_runs = len({p.split(":")[0] for p in problems})
        shown = "\n  - ".join(problems[:20]) + (
            f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        raise FileNotFoundError(
            f"{n_runs} configured run(s) are incomplete in {bids_root}:\n  - {shown}\n"
            "Download (or rename) the missing files, or remove those subjects/sessions/runs from the study "
            "section of the config."
        )
