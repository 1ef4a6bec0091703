"""``huggingface_vision``: a transformers image model (DINOv2, CLIP-Vision, ...) by Hub id or folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from megdecode.latents.hf_common import (
    HuggingFaceKind,
    RandomInit,
    check_source_options,
    commit_hash,
    parse_random_init,
)
from megdecode.latents.registry import BatchCollector, LatentResult, register_kind
from megdecode.latents.stimuli import Stimuli

VISION_OUTPUTS = ("cls", "pooled", "mean_tokens", "tokens", "image_embeds", "image_embeds_tokens")
# checkpoint model_type -> class used when model_class is "auto" (a full CLIP checkpoint: its vision tower)
VISION_CLASSES = {
    "clip": "CLIPVisionModelWithProjection",
    "clip_vision_model": "CLIPVisionModelWithProjection",
    "siglip": "SiglipVisionModel",
}


@dataclass
class VisionOptions:
    """Options of the ``huggingface_vision`` kind (see backbones.schema.yaml)."""

    model: str = ""
    revision: str = "main"
    model_class: str = "auto"
    output: str = "cls"
    layer: int | None = None
    dtype: str = "float32"
    batch_size: int = 32
    device: str = "auto"
    random_init: RandomInit | None = None

    def __post_init__(self) -> None:
        self.random_init = parse_random_init(self.random_init, "huggingface_vision")
        check_source_options(self.model, self.random_init, "huggingface_vision")
        if self.output not in VISION_OUTPUTS:
            raise ValueError(
                f"huggingface_vision output must be one of {VISION_OUTPUTS}, got {self.output!r}"
            )


def projected_tokens(model: Any, out: Any):
    """Every CLIP token through the final norm and the image projection: (B, 257, 768) for ViT-L/14.

    The paper's "CLIP-Vision 257 x 768" latent, as Versatile Diffusion's image context encoder computes it.
    """
    if not hasattr(model, "visual_projection"):
        raise ValueError("output 'image_embeds_tokens' needs a CLIP vision model with projection")
    return model.visual_projection(model.vision_model.post_layernorm(out.last_hidden_state))


def select_vision_output(out: Any, output: str, layer: int | None):
    """The requested tensor of a model output: (B, dim) or (B, tokens, dim) for ``tokens``."""
    if output == "image_embeds":
        if getattr(out, "image_embeds", None) is None:
            raise ValueError(
                "output 'image_embeds' needs a model with a projection (CLIPVisionModelWithProjection)"
            )
        return out.image_embeds
    if output == "pooled":
        if getattr(out, "pooler_output", None) is None:
            raise ValueError("output 'pooled' needs a model with a pooler; use 'cls' or 'mean_tokens'")
        return out.pooler_output
    hidden = out.last_hidden_state if layer is None else out.hidden_states[layer]
    if output == "cls":
        return hidden[:, 0]
    if output == "mean_tokens":
        return hidden[:, 1:].mean(dim=1)
    return hidden


@register_kind("huggingface_vision")
class HuggingFaceVision(HuggingFaceKind):
    """Image embeddings of a transformers vision model, in batches, under ``torch.inference_mode``."""

    Options = VisionOptions

    def pretrained_label(self) -> str:
        return f"{self.options.model} ({self.options.output})"

    def compute(self, stimuli: Stimuli, threads: int = 1, weights_dir: str | None = None) -> LatentResult:
        import torch

        opts: VisionOptions = self.options
        model, processor, revision = self.load_transformers_model(
            threads, weights_dir, VISION_CLASSES, "processor"
        )
        param = next(model.parameters())
        collector = BatchCollector(len(stimuli))
        with torch.inference_mode():
            for idx in self.image_batches(stimuli):
                images = [stimuli.load_rgb(i) for i in idx]
                pixels = processor(images=images, return_tensors="pt")["pixel_values"]
                out = model(
                    pixel_values=pixels.to(device=param.device, dtype=param.dtype),
                    output_hidden_states=opts.layer is not None,
                    return_dict=True,
                )
                if opts.output == "image_embeds_tokens":
                    selected = projected_tokens(model, out)
                else:
                    selected = select_vision_output(out, opts.output, opts.layer)
                collector.add(idx, selected.float().cpu().numpy())
        latents = collector.result()
        preprocessing = {"image_processor": _processor_summary(processor)}
        revision = commit_hash(model) or revision
        return LatentResult(latents, self.provenance(model, revision, opts.output, opts.layer, preprocessing))


def _processor_summary(processor: Any) -> dict[str, Any]:
    keys = ("size", "crop_size", "do_center_crop", "do_resize", "image_mean", "image_std", "do_normalize")
    summary = {"class": type(processor).__name__}
    for key in keys:
        value = getattr(processor, key, None)
        if dataclasses.is_dataclass(value):
            value = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
        elif hasattr(value, "keys"):
            value = {k: v for k, v in dict(value).items() if v is not None}
        if value is not None:
            summary[key] = value
    return summary
