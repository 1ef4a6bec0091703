"""The per-subject job: assemble the training inputs, then the QC report (one process per subject)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from megdecode.preprocessing.assemble import assemble_subject
from megdecode.preprocessing.qc import build_report

OUTPUT_KEYS = ("meg", "trials", "channels", "info", "runs", "report")


def preprocess_subject(
    epochs_paths: Sequence[Path | str],
    qc_paths: Sequence[Path | str],
    psd_paths: Sequence[Path | str],
    subject: str,
    outputs: Mapping[str, Path | str],
    cfg: dict[str, Any],
    seed: int,
    validation: str = "trials",
) -> pd.DataFrame:
    """``assemble_subject`` + ``build_report``; ``outputs`` maps each of OUTPUT_KEYS to its path."""
    missing = [k for k in OUTPUT_KEYS if k not in outputs]
    if missing:
        raise ValueError(f"preprocess_subject needs output paths for {missing}")
    trials = assemble_subject(
        epochs_paths,
        qc_paths,
        subject,
        Path(outputs["meg"]).parent,
        outputs["runs"],
        cfg,
        seed,
        validation,
    )
    from megdecode.preprocessing.params import PreprocessingParams

    params = PreprocessingParams.from_config(cfg)
    build_report(epochs_paths, psd_paths, outputs["runs"], subject, outputs["report"], params)
    return trials
