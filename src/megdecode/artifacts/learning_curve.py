"""The learning-curve experiment's per-job files (patterns in :class:`~megdecode.artifacts.paths.Layout`).

- scores ``{R}/learning_curve/{world}/sub-{subject}_seed-{seed}_n-{n_train}_scores.tsv``: one row per
  (decoder, backbone, scored set, item) with the item's retrieval scores (:data:`SCORE_COLUMNS`); the oracle
  has ``n_train`` 0 and no backbone (the same rows in every size's file: it trains on nothing);
- trials ``..._trials.tsv``: one row per simulated trial with the variables that generated it.
"""

from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd

from megdecode import io
from megdecode.artifacts.paths import Layout

SCORE_COLUMNS = [
    "world",
    "subject",
    "seed",
    "n_train",
    "backbone",
    "decoder",
    "test_set",
    "image_id",
    "top1_acc",
    "top5_acc",
    "median_rank",
]
ITEM_KEYS = SCORE_COLUMNS[:8]  # what identifies one row
EXTRA_COLUMNS = ["epochs", "best_epoch"]  # the brain module's training length (empty for the others)


def write_scores(scores: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(scores.reindex(columns=SCORE_COLUMNS + EXTRA_COLUMNS), path)


def find_scores(results_dir: Path | str) -> list[Path]:
    """Every job's scores file of one run (the Layout's pattern with each wildcard matching anything)."""
    layout = Layout(results=str(results_dir), bids_root="", stimuli_images="")
    pattern = layout.learning_curve_scores.format(world="*", subject="*", seed="*", n_train="*")
    return [Path(p) for p in sorted(glob.glob(pattern))]


def read_scores(path: Path | str) -> pd.DataFrame:
    """One job's scores, checked for the columns the summary needs."""
    table = io.read_tsv(path, dtype={"subject": str, "image_id": str, "backbone": str})
    missing = [c for c in SCORE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; rerun its learning_curve_job")
    table["backbone"] = table["backbone"].fillna("")
    return table


def write_trials(trials: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(trials, path)
