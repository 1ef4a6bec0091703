"""Snakemake input helpers for the preprocessing rules (no heavy imports: the rule files load this)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def subject_runs_function(
    pattern: str, sessions: Sequence[str], runs: Sequence[str]
) -> Callable[[Any], list[str]]:
    """Input function: ``pattern`` filled in for every session/run of the wildcards' subject."""

    def files(wildcards: Any) -> list[str]:
        return [pattern.format(subject=wildcards.subject, session=s, run=r) for s in sessions for r in runs]

    return files
