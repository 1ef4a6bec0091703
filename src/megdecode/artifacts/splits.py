"""Split names of the trials table and the rule that no test image or concept reaches training."""

from __future__ import annotations

import pandas as pd

TRAIN, VAL = "train", "val"
TEST_SMALL, TEST_LARGE = "test_small", "test_large"
TEST_SPLITS = (TEST_SMALL, TEST_LARGE)
PRED_SPLITS = (VAL, *TEST_SPLITS)
ALL_SPLITS = (TRAIN, *PRED_SPLITS)


class LeakageError(ValueError):
    """A test image or concept would reach training or model selection."""


def check_no_leakage(trials: pd.DataFrame, where: str = "trials", validation: str = "trials") -> None:
    """Raise :class:`LeakageError` if a test image (or test concept, when given) is among train/val rows; with
    ``validation="concepts"`` also if a validation concept is among the training rows."""
    split = trials["split"].astype(str)
    fit, test = split.isin([TRAIN, VAL]), split.isin(TEST_SPLITS)
    leaked = {}
    for column in ("image_id", "concept"):
        if column in trials:
            shared = set(trials.loc[fit, column].astype(str)) & set(trials.loc[test, column].astype(str))
            leaked[column] = sorted(shared)
    if any(leaked.values()):
        raise LeakageError(
            f"{where}: test images {leaked.get('image_id', [])[:5]} / concepts "
            f"{leaked.get('concept', [])[:5]} in train/val rows; fix the split in preprocessing "
            "(test concepts must leave training)"
        )
    if validation == "concepts" and "concept" in trials:
        shared = set(trials.loc[split == TRAIN, "concept"].astype(str)) & set(
            trials.loc[split == VAL, "concept"].astype(str)
        )
        if shared:
            raise LeakageError(
                f"{where}: validation concepts {sorted(shared)[:5]} also in training rows, but "
                "training.validation is 'concepts'; rerun preprocessing with this setting (the same "
                "validation concepts for every subject)"
            )
