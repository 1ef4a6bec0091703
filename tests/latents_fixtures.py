"""Small stimulus sets for the latents tests (images written to a temp folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

COLOURS = {"red": (220, 30, 25), "green": (40, 180, 50), "blue": (40, 60, 230)}
SHAPES = ("square", "circle")


def render(shape: str, colour: str, size: int, offset: int) -> np.ndarray:
    img = np.full((size, size, 3), 128, dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2 + offset
    r = size // 4
    mask = (
        (np.abs(yy - c) < r) & (np.abs(xx - c) < r)
        if shape == "square"
        else (yy - c) ** 2 + (xx - c) ** 2 < r**2
    )
    img[mask] = COLOURS[colour]
    return img


def make_stimuli(root: Path, size: int = 32, n_exemplars: int = 2) -> tuple[Path, Path]:
    """A stimulus table (exp, test and one catch row) + PNG images; returns (table path, images root)."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for shape in SHAPES:
        for colour in COLOURS:
            concept = f"{colour}_{shape}"
            test_concept = concept == "blue_circle"
            for ex in range(n_exemplars):
                file = f"{concept}/{concept}_{ex:02d}.png"
                (images / concept).mkdir(exist_ok=True)
                Image.fromarray(render(shape, colour, size, ex)).save(images / file)
                role = "test" if test_concept and ex == 0 else "exp"
                rows.append(
                    {
                        "image_id": f"{concept}_{ex:02d}",
                        "file": file,
                        "concept": concept,
                        "exemplar": ex,
                        "role": role,
                        "concept_split": "test" if test_concept else "train",
                        "shape": shape,
                        "colour": colour,
                        "texture": "solid",
                    }
                )
    Image.fromarray(np.zeros((size, size, 3), dtype=np.uint8)).save(images / "catch.png")
    catch = {"image_id": "catch_00", "file": "catch.png", "concept": "catch", "exemplar": 0, "role": "catch"}
    rows.append({**catch, "concept_split": "train", "shape": "none", "colour": "none", "texture": "none"})
    table = root / "stimuli.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    return table, images
