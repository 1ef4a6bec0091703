"""Small, safe file helpers shared by every stage.

Every writer goes through :func:`atomic_output`, so an interrupted job never leaves a
file that looks complete. Arrays are stored as ``.npy``/``.npz`` without pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    Works for files and directories. The temporary name keeps the suffix so writers that
    dispatch on the extension (mne, numpy) behave as for the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"writer produced nothing for {path}")
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_tsv(df: pd.DataFrame, path: Path | str) -> None:
    """Write a TSV atomically (``n/a`` for missing values, as BIDS does)."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep="n/a")


class EmptyTableError(ValueError):
    """A TSV file with no bytes (not even a header row)."""


def read_tsv(path: Path | str, **kwargs: Any) -> pd.DataFrame:
    """Read a TSV, treating ``n/a`` and ``N/A`` as missing; a missing or empty file is named in the error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected table not found: {path}")
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a", "N/A"], keep_default_na=True, **kwargs)
    except pd.errors.EmptyDataError as err:
        raise EmptyTableError(
            f"{path} is empty ({path.stat().st_size} bytes, not even a header row); re-copy it from its "
            "source, or delete it and rerun the job that makes it"
        ) from err


def write_json(obj: Any, path: Path | str) -> None:
    """Write JSON atomically with sorted keys (stable bytes for the same content)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: Path | str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected JSON file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); delete it and rerun the job that makes it"
        ) from err


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def save_npy(array: np.ndarray, path: Path | str) -> None:
    """Save one array as ``.npy`` atomically (memory-mappable, no pickle)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def load_npy(path: Path | str, mmap: bool = False) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected array not found: {path}")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path} is not a readable .npy array ({err}); rerun the job that makes it") from err


def non_finite_rows(values: np.ndarray, chunk_bytes: int = 64 << 20) -> np.ndarray:
    """Indices of the rows (axis 0) of ``values`` holding a NaN or infinite value.

    Reads a memory-mapped array in blocks of about ``chunk_bytes``; a row's float64 sum carries any NaN/inf
    (float32 values cannot overflow it), so each block costs one pass.
    """
    values = values if isinstance(values, np.ndarray) else np.asarray(values)
    if values.dtype.kind != "f" or len(values) == 0:
        return np.zeros(0, np.int64)
    row_bytes = max(1, values[:1].nbytes)
    step = max(1, chunk_bytes // row_bytes)
    bad = []
    for start in range(0, len(values), step):
        block = np.asarray(values[start : start + step])
        sums = block.reshape(len(block), -1).sum(axis=1, dtype=np.float64)
        bad.append(start + np.flatnonzero(~np.isfinite(sums)))
    return np.concatenate(bad)


def save_npz(arrays: Mapping[str, np.ndarray], path: Path | str) -> None:
    """Save named arrays as ``.npz`` atomically (string arrays as fixed-width unicode, no pickle)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def load_npz(path: Path | str) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected archive not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError) as err:
        raise ValueError(
            f"{path} is not a readable .npz archive ({err}); rerun the job that makes it"
        ) from err
