"""Entry points of the latents stage: one call per workflow job."""

from __future__ import annotations

import json
import logging
import math
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from megdecode.artifacts.latents import write_latents
from megdecode.io import atomic_output
from megdecode.latents.random_init import build_random_model
from megdecode.latents.registry import make_backbone
from megdecode.latents.stimuli import load_stimuli
from megdecode.seeds import derive_seed

log = logging.getLogger(__name__)

HF_KINDS = ("huggingface_vision", "huggingface_text", "diffusers_vae")


def needs_random_build(spec: Mapping[str, Any]) -> bool:
    """True for a backbone entry whose weights are built by ``build_random_backbone``."""
    return spec.get("kind") in HF_KINDS and (spec.get("options") or {}).get("random_init") is not None


def jsonable(value: Any) -> Any:
    """A JSON-safe copy (unknown objects as their string form) so sidecars never fail to serialise."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def build_random_backbone(name: str, spec: Mapping[str, Any], out_dir: Path | str, seed: int = 0) -> None:
    """Build backbone ``name``'s randomly initialised model into ``out_dir`` (atomically)."""
    backbone = make_backbone(name, spec)
    ri = getattr(backbone.options, "random_init", None)
    if ri is None:
        raise ValueError(f"backbones.{name}: no options.random_init, nothing to build")
    model_seed = derive_seed(seed, name, ri.seed)
    with atomic_output(out_dir) as tmp:
        build_random_model(backbone.kind, ri, tmp, model_seed)


def software_versions() -> dict[str, str]:
    """Versions of python, megdecode and whichever numeric libraries the job imported."""
    import megdecode

    versions = {"python": platform.python_version(), "megdecode": megdecode.__version__}
    for module in ("numpy", "skimage", "PIL", "torch", "transformers", "diffusers"):
        if module in sys.modules:
            versions[module] = str(getattr(sys.modules[module], "__version__", "unknown"))
    return versions


def latent_sidecar(
    name: str, spec: Mapping[str, Any], backbone: Any, shape: tuple[int, ...], provenance: dict
) -> dict:
    """The ``latents.json`` content: shape, kind, label, pretrained flag and provenance."""
    random_init = getattr(backbone.options, "random_init", None) is not None
    sidecar = {
        "backbone": name,
        "kind": backbone.kind,
        "label": spec.get("label") or backbone.default_label(),
        "shape": list(shape),
        "dim": math.prod(shape[1:]),
        "dtype": "float32",
        "n_images": shape[0],
        "pretrained": backbone.pretrained,
        "random_init": random_init,
        "software": software_versions(),
        **provenance,
    }
    return jsonable(sidecar)


def compute_latents(
    name: str,
    spec: Mapping[str, Any],
    table: Path | str,
    images_root: Path | str,
    out_dir: Path | str,
    threads: int = 1,
    weights_dir: Path | str | None = None,
) -> None:
    """Compute backbone ``name`` (config entry ``spec``) for every exp/test stimulus into ``out_dir``."""
    backbone = make_backbone(name, spec)
    stimuli = load_stimuli(table, images_root)
    log.info("backbone %s (%s): %d images from %s", name, backbone.kind, len(stimuli), table)
    result = backbone.compute(stimuli, threads=threads, weights_dir=str(weights_dir) if weights_dir else None)
    latents = result.latents
    if latents.ndim not in (2, 3) or latents.shape[0] != len(stimuli):
        raise RuntimeError(f"backbone {name}: latents of shape {latents.shape} for {len(stimuli)} images")
    if not np.isfinite(latents).all():
        raise RuntimeError(f"backbone {name}: latents contain NaN or inf; check the model and dtype")
    sidecar = latent_sidecar(name, spec, backbone, latents.shape, result.provenance)
    write_latents(out_dir, stimuli.image_ids, latents, sidecar)
    log.info("wrote %s %s (%s)", out_dir, latents.shape, sidecar["label"])


def latents_job_inputs(
    name: str, backbones: Mapping[str, Any], table: str, images: str | None, pretrained_pattern: str
) -> dict[str, str]:
    """Inputs of the latents job of backbone ``name`` (for the Snakefile): table, images, built weights."""
    inputs = {"table": table}
    if images is not None:
        inputs["images"] = images
    if needs_random_build(backbones[name]):
        inputs["weights"] = pretrained_pattern.format(backbone=name)
    return inputs


LIGHT_KINDS = ("handcrafted", "attributes")


def latents_job_threads(spec: Mapping[str, Any]) -> int:
    """Threads of a latents job: 1 for table/scikit-image kinds, 2 for torch models."""
    return 1 if spec.get("kind") in LIGHT_KINDS else 2


def latents_job_resources(spec: Mapping[str, Any]) -> dict[str, int]:
    """``mem_mb``/``runtime`` (minutes)/``gpu`` of a latents job: the entry's own, else a default by kind.

    Handcrafted, attributes and small random-init models: 2 GB, 30 min, no GPU; pretrained models: 16 GB,
    4 h, one GPU.
    """
    light = spec.get("kind") in LIGHT_KINDS or needs_random_build(spec)
    gpu = spec.get("gpu")
    return {
        "mem_mb": int(spec.get("mem_mb") or (2000 if light else 16000)),
        "runtime": int(spec.get("runtime") or (30 if light else 240)),
        "gpu": int(gpu if gpu is not None else (0 if light else 1)),
    }
