"""A human-made "semantic" latent: one-hot / multi-hot codes of stimulus-table attribute columns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from megdecode.latents.registry import LatentKind, LatentResult, register_kind
from megdecode.latents.stimuli import Stimuli


@dataclass
class AttributesOptions:
    """Options of the ``attributes`` kind (see backbones.schema.yaml)."""

    columns: list[str] = field(default_factory=lambda: ["shape", "colour", "texture"])
    include_concept: bool = False
    separator: str = "|"


def category_values(values: pd.Series, separator: str) -> list[list[str]]:
    """Each cell's categories (a cell ``a|b`` is multi-hot when ``separator`` is ``|``; missing: none)."""
    out = []
    for v in values:
        if pd.isna(v):
            out.append([])
        else:
            text = str(v)
            out.append([p.strip() for p in text.split(separator)] if separator else [text])
    return out


def multi_hot(cells: list[list[str]]) -> tuple[np.ndarray, list[str]]:
    """Multi-hot matrix (n, n_categories) over the sorted categories of ``cells``, and those categories."""
    vocab = sorted({c for cell in cells for c in cell if c})
    pos = {c: j for j, c in enumerate(vocab)}
    codes = np.zeros((len(cells), len(vocab)), dtype=np.float32)
    for i, cell in enumerate(cells):
        for c in cell:
            if c:
                codes[i, pos[c]] = 1.0
    return codes, vocab


def attribute_codes(table: pd.DataFrame, opts: AttributesOptions, where: str = "stimulus table"):
    """Concatenated multi-hot blocks for the configured columns; returns (codes, {column: categories})."""
    columns = list(opts.columns) + (["concept"] if opts.include_concept else [])
    if not columns:
        raise ValueError(
            "attributes backbone: no column selected; set options.columns or include_concept: true"
        )
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{where}: attribute column(s) {', '.join(missing)} not found "
            f"(columns: {', '.join(table.columns)}); "
            "set the backbone's options.columns to existing columns"
        )
    blocks, vocabularies = [], {}
    for col in columns:
        codes, vocab = multi_hot(category_values(table[col], opts.separator))
        blocks.append(codes)
        vocabularies[col] = vocab
    return np.concatenate(blocks, axis=1), vocabularies


@register_kind("attributes")
class Attributes(LatentKind):
    """Semantic latent from the table (no image is read): what the simulated late MEG component encodes."""

    Options = AttributesOptions

    def default_label(self) -> str:
        return "Attributes (semantic)"

    def compute(self, stimuli: Stimuli, threads: int = 1, weights_dir: str | None = None) -> LatentResult:
        codes, vocab = attribute_codes(stimuli.table, self.options)
        provenance = {
            "model": "stimulus table",
            "revision": None,
            "output": "multi-hot",
            "layer": None,
            "preprocessing": {"categories": vocab},
            "options": asdict(self.options),
        }
        return LatentResult(codes.astype(np.float32), provenance)
