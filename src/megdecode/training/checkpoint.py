"""Per-epoch checkpoints of a training job, so a killed job resumes where it stopped.

A checkpoint holds tensors, numbers, strings, lists and dicts only (loadable with ``weights_only=True``) and
the fingerprint of everything that determines the run; a checkpoint of another config or data is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from megdecode import io

log = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """Hash of everything that determines a run, stored in checkpoints (a stale checkpoint is ignored)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_stamp(path: Path) -> str:
    """Size and modification time of an input file (part of the fingerprint)."""
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic ``torch.save``."""
    with io.atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was written for this run, else None (logged)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: start over rather than fail
        log.warning("ignoring unreadable checkpoint %s (%s)", path, err)
        return None
    if state.get("fingerprint") != expected_fingerprint:
        log.warning("ignoring checkpoint %s written for another config/data", path)
        return None
    return state
