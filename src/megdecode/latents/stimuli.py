"""The stimuli a latent job sees: rows of the stimulus table whose role is ``exp`` or ``test``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode.artifacts.stimuli import LATENT_ROLES, read_image, read_stimuli


class ImageLoadError(OSError):
    """An image that cannot be read; the message names the file and the fix."""


@dataclass
class Stimuli:
    """Stimulus rows (table order) and the folder their ``file`` column is relative to."""

    table: pd.DataFrame
    images_root: Path

    def __len__(self) -> int:
        return len(self.table)

    @property
    def image_ids(self) -> list[str]:
        return self.table["image_id"].astype(str).tolist()

    def path(self, i: int) -> Path:
        return self.images_root / str(self.table["file"].iloc[i])

    def load_rgb(self, i: int, size: int | None = None) -> np.ndarray:
        """Image ``i`` as uint8 RGB (H, W, 3), optionally resized to ``size`` x ``size``."""
        return load_rgb(self.path(i), size)

    def batches(self, batch_size: int) -> Iterator[list[int]]:
        """Row indices in consecutive batches of at most ``batch_size``."""
        for start in range(0, len(self), batch_size):
            yield list(range(start, min(start + batch_size, len(self))))


def load_stimuli(
    table_path: Path | str, images_root: Path | str, roles: Sequence[str] = LATENT_ROLES
) -> Stimuli:
    """Read the stimulus table and keep the rows whose ``role`` is in ``roles`` (catch images excluded)."""
    table = read_stimuli(table_path)
    table = table[table["role"].isin(list(roles))].reset_index(drop=True)
    if table.empty:
        raise ValueError(
            f"{table_path}: no stimulus with role in {list(roles)}; nothing to compute latents for"
        )
    return Stimuli(table=table, images_root=Path(images_root))


def load_rgb(path: Path | str, size: int | None = None) -> np.ndarray:
    """Read an image file as uint8 RGB; ``size``: resize (bilinear) to a square of that side."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        img = read_image(path)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError as err:
        raise ImageLoadError(
            f"stimulus image not found: {path}; check the stimuli table's 'file' column and the images root"
        ) from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageLoadError(
            f"cannot read stimulus image {path} ({err}); replace the file or regenerate the stimuli"
        ) from err
