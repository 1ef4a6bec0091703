"""The per-trial TSV of an online session, written as the trials come.

:class:`TrialLog` appends one row per decoded or skipped trial and returns only when the row is on disk
(written, flushed, ``fsync``-ed): a decoder that calls it from its ``on_record`` hook decodes the next
trial only after the last one is safe, so a session or replay that fails later keeps every trial before
the failure. Missing values are written ``n/a`` (as :func:`megdecode.io.write_tsv` does), floats with 6
significant digits; :func:`read_trial_log` reads the file back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from megdecode.io import read_tsv

MODES = ("new", "truncate", "append")
TEXT_COLUMNS = {"subject": str, "session": str, "run": str, "image_id": str, "top1": str, "top5": str}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")


class TrialLog:
    """Rows of ``columns`` appended to the TSV ``path``, each durable when :meth:`write` returns.

    ``mode``: ``"new"`` refuses a file that exists and is not empty (a live session never overwrites
    another's trials), ``"truncate"`` starts the file afresh (a replay job that is rerun), ``"append"``
    continues a file with the same header. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: Path | str, columns: Sequence[str], mode: str = "new") -> None:
        if mode not in MODES:
            raise ValueError(f"TrialLog mode {mode!r} is not one of {MODES}")
        self.path = Path(path)
        self.columns = list(columns)
        self.n_rows = 0
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists and mode == "new":
            raise FileExistsError(
                f"{self.path} already holds trials of another session; choose another output folder "
                "(nothing was overwritten)"
            )
        if exists and mode == "append":
            with open(self.path) as existing:
                header = existing.readline().rstrip("\n").split("\t")
            if header != self.columns:
                raise ValueError(
                    f"{self.path} has the columns {header}, not {self.columns}: append to a file of the same "
                    "kind, or write a new one"
                )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a" if mode == "append" else "w", encoding="utf-8")  # noqa: SIM115
        if not (exists and mode == "append"):
            self._commit("\t".join(self.columns) + "\n")
            _sync_directory(self.path.parent)  # the file's name is durable too

    def write(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` (column -> value; absent columns are ``n/a``) and wait until it is on disk."""
        unknown = sorted(set(row) - set(self.columns))
        if unknown:
            raise KeyError(f"{self.path}: columns {unknown} are not among {self.columns}")
        self._commit("\t".join(_cell(row.get(c)) for c in self.columns) + "\n")
        self.n_rows += 1

    def _commit(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> TrialLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_trial_log(path: Path | str) -> pd.DataFrame:
    """A per-trial TSV written by :class:`TrialLog` (identifiers kept as text)."""
    return read_tsv(path, dtype=TEXT_COLUMNS)
