"""The recipe study's files (patterns in :class:`~megdecode.artifacts.paths.Layout`, ``recipe_*``).

- scores (ridge, ceilings, brain, shared brain, selection): one row per (decoder, scored set, item) with the
  item's retrieval scores, as the learning curve's (:data:`SCORE_COLUMNS`), plus the recipe's columns
  (:data:`RECIPE_COLUMNS`): the validation type, the variant (empty for ridge and the ceilings), the
  early-stopping criterion of the brain module's weights, whether it is the variant's chosen one, its
  learning rate, epochs run and best epoch;
- choice: a variant's chosen ``stop_on`` and ``lr`` with every candidate's selection-set top-5 (JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from megdecode import io
from megdecode.artifacts.learning_curve import SCORE_COLUMNS

RECIPE_COLUMNS = ["validation", "variant", "stop_on", "chosen", "lr", "epochs", "best_epoch"]
CHOICE_KEYS = ("variant", "stop_on", "lr", "select_top5_acc", "candidates")


def write_scores(scores: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(scores.reindex(columns=SCORE_COLUMNS + RECIPE_COLUMNS), path)


def read_scores(path: Path | str) -> pd.DataFrame:
    """One job's scores, checked for the columns the summary needs."""
    table = io.read_tsv(
        path, dtype={"subject": str, "image_id": str, "backbone": str, "variant": str, "stop_on": str}
    )
    missing = [c for c in SCORE_COLUMNS + RECIPE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; delete it and rerun the recipe study")
    for column in ("backbone", "variant", "stop_on"):
        table[column] = table[column].fillna("")
    table["chosen"] = table["chosen"].astype("boolean").fillna(False).astype(bool)
    return table


def write_choice(choice: dict[str, Any], path: Path | str) -> None:
    io.write_json(choice, path)


def read_choice(path: Path | str) -> dict[str, Any]:
    choice = io.read_json(path)
    missing = [k for k in CHOICE_KEYS if k not in choice]
    if missing:
        raise ValueError(f"{path} lacks {missing}; delete it and rerun its recipe_study_select job")
    return choice
