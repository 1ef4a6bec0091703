"""One backbone's latents: ``{R}/latents/{backbone}/``.

- ``latents.npy``: float32 (n_images, dim) or (n_images, tokens, dim), memory-mappable;
- ``index.tsv``: ``image_id`` of each row, same order;
- ``latents.json``: shape, kind, label, model id, ``pretrained`` and provenance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode import io

VALUES, INDEX, META = "latents.npy", "index.tsv", "latents.json"
FILES = {"latents": VALUES, "index": INDEX, "meta": META}


def latent_files(directory: str) -> dict[str, str]:
    """``{latents, index, meta}`` paths of a backbone folder (a pattern may keep ``{backbone}``)."""
    return {key: f"{directory}/{name}" for key, name in FILES.items()}


@dataclass
class Latents:
    """Latents of every image of one backbone, addressable by image id."""

    image_ids: np.ndarray
    values: np.ndarray  # (n_images, dim) or (n_images, tokens, dim); memory-mapped when read
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path = Path("<memory>")

    def __post_init__(self) -> None:
        self.image_ids = np.asarray(self.image_ids).astype(str)
        if len(self.image_ids) != len(self.values) or np.asarray(self.values).ndim not in (2, 3):
            raise ValueError(
                f"{self.path}: latents {np.shape(self.values)} do not match {len(self.image_ids)} image ids; "
                "rerun the latents job for this backbone"
            )
        self._index = pd.Index(self.image_ids)
        if self._index.has_duplicates:
            raise ValueError(f"{self.path / INDEX} has duplicated image_id values; rerun the latents job")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one image's latent, e.g. ``(768,)`` or ``(257, 768)``."""
        return tuple(self.values.shape[1:])

    @property
    def label(self) -> str:
        return backbone_label(self.meta, default=self.path.name)

    def rows(self, image_ids: Iterable[str]) -> np.ndarray:
        """Row indices of ``image_ids``; a missing id is an error naming the latents folder."""
        wanted = [str(i) for i in image_ids]
        idx = self._index.get_indexer(wanted)
        if (idx < 0).any():
            missing = [i for i, j in zip(wanted, idx, strict=True) if j < 0]
            raise KeyError(
                f"{len(missing)} image ids have no latent in {self.path} (first: {missing[0]!r}); "
                "rerun the latents job for this backbone on the current stimuli table"
            )
        return idx.astype(np.int64)

    def get(self, image_ids: Iterable[str], dtype: type = np.float64) -> np.ndarray:
        """Latents of ``image_ids``, flattened to (n, dim), as ``dtype``."""
        idx = self.rows(image_ids)
        return np.asarray(self.values[idx], dtype=dtype).reshape(len(idx), -1)


def backbone_label(meta: Mapping[str, Any], default: str) -> str:
    """Display label of a backbone; random (not pretrained) features say so."""
    label = str(meta.get("label") or default)
    if meta.get("pretrained") is False and "random" not in label.lower():
        label += " (random features)"
    return label


def read_meta(directory: Path | str) -> dict[str, Any]:
    """``latents.json`` of one backbone."""
    return io.read_json(Path(directory) / META)


def read_latents(directory: Path | str) -> Latents:
    """Read and check a backbone folder (``latents.npy`` memory-mapped); NaN or infinite rows are errors."""
    directory = Path(directory)
    values = io.load_npy(directory / VALUES, mmap=True)
    index = io.read_tsv(directory / INDEX, dtype={"image_id": str})
    if "image_id" not in index:
        raise ValueError(f"{directory / INDEX} has no image_id column; rerun the latents job")
    meta = read_meta(directory) if (directory / META).is_file() else {}
    latents = Latents(index["image_id"].to_numpy(str), values, meta, directory)
    bad = io.non_finite_rows(values)
    if len(bad):
        shown = ", ".join(repr(str(i)) for i in latents.image_ids[bad[:3]])
        raise ValueError(
            f"{directory / VALUES} holds NaN or infinite latents for {len(bad)} of {len(values)} image(s) "
            f"(first: {shown}); the latents job never writes such values, so the file was changed or "
            f"damaged after it. Delete {directory} and run the same snakemake command again: the latents "
            "job writes it anew"
        )
    return latents


def write_latents(
    directory: Path | str, image_ids: Iterable[str], values: np.ndarray, meta: Mapping[str, Any]
) -> None:
    """Write the three files of one backbone (each atomically)."""
    directory = Path(directory)
    io.save_npy(np.asarray(values, dtype=np.float32), directory / VALUES)
    io.write_tsv(pd.DataFrame({"image_id": list(image_ids)}), directory / INDEX)
    io.write_json(dict(meta), directory / META)
