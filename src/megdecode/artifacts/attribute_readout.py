"""The attribute readout of the simulated world: ``{R}/reconstruction/attribute_readout/``.

- ``readout.npz``: the fitted readout (:func:`write_readout_model` / :func:`read_readout_model`), written by
  rule ``attribute_readout``, read by the MEG and fMRI reconstruction metrics jobs. Arrays: ``attributes``
  (str), ``image_px``, ``feature_mean`` / ``feature_scale`` (d,), ``fit_ids`` / ``val_ids`` (str), and per
  attribute ``a``: ``classes__a`` (k,), ``coef__a`` (k, d), ``intercept__a`` (k,).
- ``accuracy.tsv``: its held-out accuracy (:data:`ACCURACY_COLUMNS`), one row per attribute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from megdecode import io

MODEL, ACCURACY = "readout.npz", "accuracy.tsv"
ACCURACY_COLUMNS = ["attribute", "split", "n_fit", "n_images", "n_classes", "accuracy", "chance"]
_COMMON = ("attributes", "image_px", "feature_mean", "feature_scale", "fit_ids", "val_ids")
_PER_ATTRIBUTE = ("classes", "coef", "intercept")


def readout_files(directory: str) -> dict[str, str]:
    """``model`` and ``accuracy`` paths inside the readout's folder (wildcards kept)."""
    return {"model": f"{directory}/{MODEL}", "accuracy": f"{directory}/{ACCURACY}"}


def attribute_key(kind: str, attribute: str) -> str:
    return f"{kind}__{attribute}"


def write_readout_model(arrays: dict[str, np.ndarray], path: Path | str) -> None:
    """Write the readout's arrays after checking that every required one is there."""
    _check(arrays, path)
    io.save_npz(arrays, path)


def read_readout_model(path: Path | str) -> dict[str, np.ndarray]:
    """Read and check ``readout.npz``; a missing array names the file and the rule to rerun."""
    arrays = dict(io.load_npz(path))
    _check(arrays, path)
    return arrays


def _check(arrays: dict[str, np.ndarray], path: Path | str) -> None:
    missing = [k for k in _COMMON if k not in arrays]
    if not missing:
        missing = [
            attribute_key(kind, str(a))
            for a in np.asarray(arrays["attributes"]).tolist()
            for kind in _PER_ATTRIBUTE
            if attribute_key(kind, str(a)) not in arrays
        ]
    if missing:
        raise ValueError(f"{path}: attribute readout lacks {missing}; rerun rule attribute_readout")


def write_accuracy(table: pd.DataFrame, path: Path | str) -> None:
    missing = [c for c in ACCURACY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"attribute readout accuracy table for {path} lacks columns {missing}")
    io.write_tsv(table[ACCURACY_COLUMNS], path)


def read_accuracy(path: Path | str) -> pd.DataFrame:
    table = io.read_tsv(path)
    missing = [c for c in ACCURACY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: lacks columns {missing}; rerun rule attribute_readout")
    return table
