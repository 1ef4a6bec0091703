"""The reconstruction stage's files (rules/reconstruct.smk; the fMRI companion writes the same ones).

- ``generators/decoder/{backbone}/``: the offline decoder generator, ``model.safetensors`` (its tensors),
  ``decoder.json`` (its settings and training summary), ``history.tsv``; written by rule ``train_decoder``,
  read by rule ``reconstruct``.
- ``reconstruction/{generator}/sub-{subject}/``: ``reconstructions.npz`` (``images`` uint8 (n, H, W, 3),
  ``image_id``, ``retrieved_id`` for the retrieval generator), ``images/`` (one PNG per image, to look at),
  ``metrics.tsv`` (one row per image: :data:`ID_COLUMNS` and one column per metric), read by the summary and
  by the MEG-vs-fMRI comparison.
Paths: :mod:`~.paths` (``Layout.decoder_file``, ``Layout.reconstruction_file``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from megdecode import io

if TYPE_CHECKING:
    import torch

#: Non-metric columns of a metrics table (``image_px``: the side, in pixels, at which images were compared).
ID_COLUMNS = ("subject", "generator", "image_id", "retrieved_id", "image_px")


def write_decoder(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    history: pd.DataFrame,
    model_path: Path | str,
    meta_path: Path | str,
    history_path: Path | str,
) -> None:
    """The decoder's tensors (``model.*``, ``input.*``), its training history and ``decoder.json``."""
    from safetensors.torch import save_file

    with io.atomic_output(model_path) as tmp:
        save_file(dict(tensors), str(tmp), metadata={"backbone": str(meta["backbone"])})
    io.write_tsv(history, history_path)
    io.write_json(dict(meta), meta_path)


def read_decoder(
    model_path: Path | str, meta_path: Path | str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(``decoder.json``, tensors) of a trained decoder generator."""
    from safetensors.torch import load_file

    meta = io.read_json(meta_path)
    if not isinstance(meta, dict) or "backbone" not in meta or "params" not in meta:
        raise ValueError(f"{meta_path} is not a decoder description; rerun the train_decoder job")
    return meta, load_file(str(model_path))


def write_png_folder(images: np.ndarray, image_ids: Sequence[str], out_dir: Path | str) -> None:
    """One PNG per image, ``{image_id}.png``, in ``out_dir`` (created atomically)."""
    from PIL import Image

    with io.atomic_output(out_dir) as tmp:
        tmp.mkdir()
        for image, image_id in zip(images, image_ids, strict=True):
            Image.fromarray(image).save(tmp / f"{image_id}.png")


def write_reconstructions(
    images: np.ndarray, image_ids: Sequence[str], extra: Mapping[str, np.ndarray], path: Path | str
) -> None:
    io.save_npz({"images": images, "image_id": np.array(image_ids, dtype=str), **extra}, path)


def read_reconstructions(path: Path | str) -> dict[str, np.ndarray]:
    """``images``, ``image_id`` (and ``retrieved_id`` for the retrieval generator)."""
    data = io.load_npz(path)
    missing = [k for k in ("images", "image_id") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}; rerun the reconstruct job that writes it")
    return data


def write_metrics(scores: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(scores, path)


def read_metrics(path: Path | str) -> pd.DataFrame:
    """One (generator, subject)'s per-image metrics (``subject`` and ``image_id`` as text)."""
    table = io.read_tsv(path, dtype={"subject": str, "image_id": str})
    if "generator" not in table or "pixcorr" not in table:
        raise ValueError(f"{path} is not a reconstruction metrics table; rerun its metrics job")
    return table
