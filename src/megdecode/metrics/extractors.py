"""The field's feature networks for reconstruction metrics (an optional extra: torchvision and its weights).

The definitions of MindEye's public evaluation script (Scotti et al. 2023, ``src/Reconstruction_Metrics.py``
of MedARC-AI/fMRI-reconstruction-NSD), which the paper's and NSD's reconstruction numbers use [V]: images in
[0, 1], resized (bilinear, shorter side) to the net's size, normalised with ImageNet's mean and SD, features
of one node (flattened):

============  ===============================  ==============  ======  ================================
name          network (weights)                node            resize  metric of the paper
============  ===============================  ==============  ======  ================================
alexnet2      AlexNet (IMAGENET1K_V1)          features.4      256     two-way identification
alexnet5      AlexNet (IMAGENET1K_V1)          features.11     256     two-way identification
inception     Inception-v3 (IMAGENET1K_V1)     avgpool         342     two-way identification
effnet        EfficientNet-B1 (IMAGENET1K_V2)  avgpool         255     correlation distance
swav          SwAV ResNet-50 (800 epochs)      avgpool         224     correlation distance
============  ===============================  ==============  ======  ================================

CLIP ViT-L/14's final embedding (two-way) is a ``huggingface_vision`` backbone (``output: image_embeds``)
listed in ``reconstruction.metrics.feature_backbones``. Nothing is downloaded: a net runs only when
torchvision is installed and its weights file is in torch's hub cache (``$TORCH_HOME/hub/checkpoints``, under
the file name torchvision or SwAV's hub entry uses); otherwise it is skipped with a log line naming the
missing piece.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ExtractorSpec:
    """One feature net of the field's evaluation (see the module table)."""

    architecture: str  # torchvision.models function
    weights_file: str  # file name in the hub cache
    node: str
    resize: int


SPECS: dict[str, ExtractorSpec] = {
    "alexnet2": ExtractorSpec("alexnet", "alexnet-owt-7be5be79.pth", "features.4", 256),
    "alexnet5": ExtractorSpec("alexnet", "alexnet-owt-7be5be79.pth", "features.11", 256),
    "inception": ExtractorSpec("inception_v3", "inception_v3_google-0cc3c7bd.pth", "avgpool", 342),
    "effnet": ExtractorSpec("efficientnet_b1", "efficientnet_b1-c27df63c.pth", "avgpool", 255),
    "swav": ExtractorSpec("resnet50", "swav_800ep_pretrain.pth.tar", "avgpool", 224),
}


def weights_path(spec: ExtractorSpec) -> Path:
    """Where torch's hub cache keeps ``spec``'s weights."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_file


def missing_requirement(name: str) -> str | None:
    """Why the extractor ``name`` cannot run here, or None when it can."""
    if name not in SPECS:
        return f"unknown extractor (known: {', '.join(SPECS)})"
    if importlib.util.find_spec("torchvision") is None:
        return "torchvision is not installed (an optional extra: install it and its weights to score this)"
    path = weights_path(SPECS[name])
    if not path.is_file():
        return f"its weights are not in {path} (nothing is downloaded; place the file there)"
    return None


def _load_state(spec: ExtractorSpec) -> dict:
    import torch

    state = torch.load(weights_path(spec), map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_extractor(name: str, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A function ``uint8 (n, H, W, 3) -> (n, d)`` features of the net ``name`` (raises if it cannot run)."""
    reason = missing_requirement(name)
    if reason is not None:
        raise RuntimeError(f"extractor {name}: {reason}")
    import torch
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    spec = SPECS[name]
    builder = getattr(torchvision.models, spec.architecture)
    net = (
        builder(weights=None, aux_logits=True, init_weights=False)
        if spec.architecture == "inception_v3"
        else builder(weights=None)
    )
    missing, _ = net.load_state_dict(_load_state(spec), strict=False)
    if [k for k in missing if not k.startswith("fc.")]:
        raise RuntimeError(f"extractor {name}: {weights_path(spec)} lacks weights {missing[:3]}")
    model = create_feature_extractor(net, return_nodes=[spec.node]).to(device).eval().requires_grad_(False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @torch.no_grad()
    def extract(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(images, np.float32) / 255.0).permute(0, 3, 1, 2)
        x = torchvision.transforms.functional.resize(
            x, spec.resize, interpolation=torchvision.transforms.InterpolationMode.BILINEAR, antialias=False
        )
        out = model(((x - mean) / std).to(device))[spec.node]
        return out.float().flatten(1).cpu().numpy().astype(np.float64)

    return extract


def available_extractors(
    names: Sequence[str], device: str = "cpu"
) -> Mapping[str, Callable[[np.ndarray], np.ndarray]]:
    """The extractors of ``names`` that can run here; each one that cannot is logged with its reason."""
    out = {}
    for name in names:
        reason = missing_requirement(name)
        if reason is None:
            out[name] = build_extractor(name, device)
        else:
            log.info("metric %s skipped: %s", name, reason)
    return out
