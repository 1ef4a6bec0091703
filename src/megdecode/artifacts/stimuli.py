"""The stimulus table: ``{R}/stimuli/stimuli.tsv``, one row per image shown in the study, and its images.

Columns: ``image_id`` (unique), ``file`` (relative to the images root), ``concept``, ``exemplar``, ``role``
(``exp``, ``test`` or ``catch``), ``concept_split`` (``train`` or ``test``), plus attribute columns.
The images (``images root / file``) are read with :func:`read_image`.

The simulated study's images folder ``{R}/stimuli/images/`` also holds ``checksums.sha256`` (the format of
``sha256sum``): the workflow checks the images against it when it starts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

import pandas as pd

from megdecode import io

REQUIRED_COLUMNS = ("image_id", "file", "role")
LATENT_ROLES = ("exp", "test")  # images that get a latent (catch images do not)


def write_stimuli(table: pd.DataFrame, path: Path | str) -> None:
    missing = [c for c in (*REQUIRED_COLUMNS, "concept", "concept_split") if c not in table.columns]
    if missing:
        raise ValueError(f"stimulus table for {path} lacks columns {missing}")
    io.write_tsv(table, path)


def read_stimuli(path: Path | str) -> pd.DataFrame:
    """Read and check the table (ids unique, required columns present), indexed by ``image_id``."""
    table = io.read_tsv(path, dtype={"image_id": str, "file": str, "concept": str})
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} (a stimulus table needs "
            f"{', '.join(REQUIRED_COLUMNS)}; see docs/ARCHITECTURE.md); rerun the stimuli job"
        )
    duplicated = table["image_id"][table["image_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{path}: image_id not unique ({', '.join(duplicated[:5])}); fix the stimulus table")
    return table.set_index("image_id", drop=False).rename_axis(None)


def read_image(path: Path | str) -> Image.Image:
    """One stimulus image file as an RGB image, read in full (the file is closed again)."""
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def train_image_ids(stimuli: pd.DataFrame) -> list[str]:
    """Images a generator may learn from or retrieve: ``exp`` images of training concepts only."""
    keep = (stimuli["role"] == "exp") & (stimuli["concept_split"] == "train")
    return stimuli.loc[keep, "image_id"].astype(str).tolist()


CHECKSUMS = "checksums.sha256"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_image_checksums(images_dir: Path | str) -> None:
    """``checksums.sha256`` of every file under ``images_dir`` (``sha256sum -c`` reads it)."""
    images_dir = Path(images_dir)
    files = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    lines = [f"{_sha256(p)}  {p.relative_to(images_dir).as_posix()}\n" for p in files]
    (images_dir / CHECKSUMS).write_text("".join(lines))


def check_image_checksums(images_dir: Path | str, written_by: str = "simulate_stimuli") -> None:
    """Raise ValueError naming the images that differ from (or are missing against) ``checksums.sha256``.

    A folder without the file (not written yet, or by an older version) is not checked.
    """
    images_dir = Path(images_dir)
    listing = images_dir / CHECKSUMS
    if not listing.is_file():
        return
    entries = [line.split("  ", 1) for line in listing.read_text().splitlines() if "  " in line]
    damaged = [
        name
        for digest, name in entries
        if not (images_dir / name).is_file() or _sha256(images_dir / name) != digest
    ]
    if damaged:
        shown = ", ".join(damaged[:5]) + (f" and {len(damaged) - 5} more" if len(damaged) > 5 else "")
        raise ValueError(
            f"{len(damaged)} stimulus image(s) in {images_dir} differ from what the {written_by} job wrote "
            f"(checked against {listing}): {shown}. Delete {images_dir} and run the same snakemake command "
            f"again: {written_by} writes them anew, and what was made from them is remade"
        )
