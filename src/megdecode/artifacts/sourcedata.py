"""The simulated lab's files in ``{R}/sourcedata/`` (rules/simulate.smk; paths: :mod:`~.paths`).

- ``ground_truth.json``: the study's world (which image features drive which component, their latencies and
  weights, the trigger codes, seeds), written by the stimuli job. Read by the subject simulator, the BIDS
  conversion and the online replay (trigger codes), the learning curve and the figures (latencies).
- ``sub-{subject}/sub-{subject}_ground_truth.json``: what was drawn for one subject (head, dipoles, bad
  channels, per-trial variables).
- per run, ``..._log.tsv``: the stimulus program's log (:data:`LOG_COLUMNS`), matched to the triggers by the
  BIDS conversion. The run's recording (``..._raw.fif``) is written and read with MNE.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from megdecode import io

#: what the simulated stimulus program logs per trial
LOG_COLUMNS = ["onset", "trial_type", "image_id", "file", "concept", "exemplar", "value", "test_image_nr"]
#: what the BIDS conversion needs of any stimulus log
REQUIRED_LOG_COLUMNS = ("onset", "trial_type", "image_id", "concept", "value")


def write_ground_truth(truth: Mapping[str, Any], path: Path | str) -> None:
    """The study's (or one subject's) ground truth, as sorted-key JSON."""
    io.write_json(dict(truth), path)


def read_ground_truth(path: Path | str) -> dict[str, Any]:
    """A ground truth written by :func:`write_ground_truth` (a JSON object, or an error naming the file)."""
    truth = io.read_json(path)
    if not isinstance(truth, dict):
        raise ValueError(
            f"{path} holds a JSON {type(truth).__name__}, not a ground-truth object; delete it and rerun "
            "the simulate_stimuli job"
        )
    return truth


def write_stimulus_log(log: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(log, path)


def read_stimulus_log(path: Path | str) -> pd.DataFrame:
    """Read a stimulus log TSV and check its columns (:data:`REQUIRED_LOG_COLUMNS`)."""
    table = io.read_tsv(path, dtype={"image_id": str, "concept": str, "trial_type": str})
    missing = [c for c in REQUIRED_LOG_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: stimulus log lacks column(s) {missing}; expected at least {list(REQUIRED_LOG_COLUMNS)} "
            "(rerun the simulate rule that writes it)"
        )
    if table.empty:
        raise ValueError(f"{path}: stimulus log has no rows")
    return table
