"""Image latents per backbone: a registry of kinds (handcrafted, attributes, Hugging Face vision/text,
diffusers VAE) and the two workflow entry points."""

from megdecode.latents.pipeline import (
    build_random_backbone,
    compute_latents,
    latents_job_inputs,
    latents_job_resources,
    latents_job_threads,
    needs_random_build,
)
from megdecode.latents.registry import (
    LatentKind,
    LatentResult,
    available_kinds,
    get_kind,
    make_backbone,
    register_kind,
)
from megdecode.latents.stimuli import ImageLoadError, Stimuli, load_stimuli

__all__ = [
    "ImageLoadError",
    "LatentKind",
    "LatentResult",
    "Stimuli",
    "available_kinds",
    "build_random_backbone",
    "compute_latents",
    "get_kind",
    "latents_job_inputs",
    "latents_job_resources",
    "latents_job_threads",
    "load_stimuli",
    "make_backbone",
    "needs_random_build",
    "register_kind",
]
