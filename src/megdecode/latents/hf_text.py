"""``huggingface_text``: a caption per image from a template, embedded by a (CLIP) text model."""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from megdecode.latents.hf_common import (
    HuggingFaceKind,
    RandomInit,
    check_source_options,
    commit_hash,
    parse_random_init,
)
from megdecode.latents.registry import LatentResult, register_kind
from megdecode.latents.stimuli import Stimuli

TEXT_OUTPUTS = ("text_embeds", "mean_tokens", "pooled", "tokens")
TEXT_CLASSES = {"clip": "CLIPTextModelWithProjection", "clip_text_model": "CLIPTextModelWithProjection"}


@dataclass
class TextOptions:
    """Options of the ``huggingface_text`` kind (see backbones.schema.yaml)."""

    model: str = ""
    revision: str = "main"
    model_class: str = "auto"
    template: str = "a photo of a {concept}"
    underscores_to_spaces: bool = True
    output: str = "mean_tokens"
    max_length: int = 77
    dtype: str = "float32"
    batch_size: int = 64
    device: str = "auto"
    random_init: RandomInit | None = None

    def __post_init__(self) -> None:
        self.random_init = parse_random_init(self.random_init, "huggingface_text")
        check_source_options(self.model, self.random_init, "huggingface_text")
        if self.output not in TEXT_OUTPUTS:
            raise ValueError(f"huggingface_text output must be one of {TEXT_OUTPUTS}, got {self.output!r}")


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a caption template uses."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def make_captions(table: pd.DataFrame, template: str, underscores_to_spaces: bool = True) -> list[str]:
    """One caption per table row, e.g. ``"a photo of a {concept}"`` -> ``"a photo of a bean bag"``."""
    fields = template_fields(template)
    missing = [f for f in fields if f not in table.columns]
    if missing:
        raise ValueError(
            f"caption template {template!r} uses {', '.join(missing)} the stimulus table lacks "
            f"(columns: {', '.join(table.columns)}); change options.template"
        )
    captions = []
    for row in table[fields].itertuples(index=False):
        values = {f: ("" if pd.isna(v) else str(v)) for f, v in zip(fields, row, strict=True)}
        if underscores_to_spaces:
            values = {f: v.replace("_", " ") for f, v in values.items()}
        captions.append(template.format(**values))
    return captions


@register_kind("huggingface_text")
class HuggingFaceText(HuggingFaceKind):
    """CLIP-Text of a caption (the paper: mean over the 77 token states); identical captions computed once."""

    Options = TextOptions

    def pretrained_label(self) -> str:
        return f"{self.options.model} text ({self.options.output})"

    def compute(self, stimuli: Stimuli, threads: int = 1, weights_dir: str | None = None) -> LatentResult:
        import torch

        opts: TextOptions = self.options
        captions = make_captions(stimuli.table, opts.template, opts.underscores_to_spaces)
        unique = sorted(set(captions))
        model, tokenizer, revision = self.load_transformers_model(
            threads, weights_dir, TEXT_CLASSES, "tokenizer"
        )
        device = next(model.parameters()).device
        chunks = []
        with torch.inference_mode():
            starts = range(0, len(unique), opts.batch_size)
            for start in tqdm(starts, desc=f"latents {self.name}", unit="batch"):
                batch = unique[start : start + opts.batch_size]
                enc = tokenizer(
                    batch,
                    padding="max_length",
                    max_length=opts.max_length,
                    truncation=True,
                    return_tensors="pt",
                )
                out = model(**{k: v.to(device) for k, v in enc.items()}, return_dict=True)
                if opts.output == "text_embeds":
                    if getattr(out, "text_embeds", None) is None:
                        raise ValueError(
                            f"{self.where}: output 'text_embeds' needs CLIPTextModelWithProjection"
                        )
                    emb = out.text_embeds
                elif opts.output == "pooled":
                    emb = out.pooler_output
                elif opts.output == "mean_tokens":
                    emb = out.last_hidden_state.mean(dim=1)
                else:
                    emb = out.last_hidden_state
                chunks.append(emb.float().cpu().numpy())
        by_caption = dict(zip(unique, np.concatenate(chunks), strict=True))
        latents = np.stack([by_caption[c] for c in captions]).astype(np.float32)
        preprocessing = {
            "template": opts.template,
            "max_length": opts.max_length,
            "padding": "max_length",
            "n_unique_captions": len(unique),
            "example_caption": captions[0],
        }
        revision = commit_hash(model) or revision
        return LatentResult(latents, self.provenance(model, revision, opts.output, None, preprocessing))
