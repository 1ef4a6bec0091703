"""The evaluation stage's long-format tables (one row per number), read by the report.

- retrieval: ``{R}/evaluation/retrieval/{model}/{backbone}/sub-{subject}.tsv``
  (:data:`RETRIEVAL_COLUMNS`; the fMRI decoders' under ``{R}/fmri/evaluation/retrieval``);
- time-resolved: ``{R}/evaluation/timeresolved/{backbone}/sub-{subject}.tsv``
  (:data:`TIMERESOLVED_COLUMNS`);
- all of them in one table with display labels: ``{R}/tables/results_long.tsv`` (:data:`LONG_COLUMNS`),
  written by the report's tables job and read by its figures job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode import io
from megdecode.artifacts.predictions import RETRIEVAL_HEAD

RETRIEVAL_COLUMNS = [
    "subject",
    "backbone",
    "model",
    "head",
    "test_set",
    "window",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "chance",
]
TIMERESOLVED_COLUMNS = [*RETRIEVAL_COLUMNS[:6], "window_kind", "tmin", "tmax", *RETRIEVAL_COLUMNS[6:]]
LONG_COLUMNS = [
    "subject",
    "backbone",
    "backbone_label",
    "model",
    "head",
    "test_set",
    "window",
    "window_kind",
    "tmin",
    "tmax",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "chance",
]
FULL_WINDOW = "full"  # the ``window`` of retrieval on the whole epoch


def scored_head_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the head each decoder was trained for retrieval with: :data:`RETRIEVAL_HEAD` where a
    decoder has it (the brain module's ``clip``), else its only head (ridge's ``mse``). Tables and figures
    compare decoders on these rows."""
    is_retrieval_head = table["head"] == RETRIEVAL_HEAD
    has_it = is_retrieval_head.groupby([table["subject"], table["backbone"], table["model"]]).transform("any")
    return table[is_retrieval_head | ~has_it]


def write_retrieval_table(table: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(table.reindex(columns=RETRIEVAL_COLUMNS), path)


def write_timeresolved_table(table: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(table.reindex(columns=TIMERESOLVED_COLUMNS), path)


def _read(path: Path | str, columns: Sequence[str], job: str = "the evaluation job") -> pd.DataFrame:
    table = io.read_tsv(path, dtype={"subject": str})
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; rerun {job} that writes it")
    return table


def read_retrieval_table(path: Path | str) -> pd.DataFrame:
    """One retrieval table (:data:`RETRIEVAL_COLUMNS`), as written."""
    return _read(path, RETRIEVAL_COLUMNS)


def write_long_table(table: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(table, path)


def read_long_table(path: Path | str) -> pd.DataFrame:
    """``results_long.tsv`` (:data:`LONG_COLUMNS`)."""
    return _read(path, LONG_COLUMNS, "the report_tables job")


def read_evaluation_tables(
    retrieval_files: Sequence[Path | str], timeresolved_files: Sequence[Path | str]
) -> pd.DataFrame:
    """Every evaluation table in one frame (:data:`TIMERESOLVED_COLUMNS`; full-epoch rows: kind ``full``)."""
    frames = [
        _read(f, RETRIEVAL_COLUMNS).assign(window_kind=FULL_WINDOW, tmin=np.nan, tmax=np.nan)
        for f in retrieval_files
    ]
    frames += [_read(f, TIMERESOLVED_COLUMNS) for f in timeresolved_files]
    if not frames:
        raise ValueError("no evaluation tables given; check evaluation.models and training.backbones")
    return pd.concat(frames, ignore_index=True)
