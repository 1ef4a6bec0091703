"""``diffusers_vae``: the AutoencoderKL latent ("AutoKL") of each image (e.g. the Stable Diffusion VAE)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from megdecode.devices import resolve_device
from megdecode.latents.hf_common import (
    HuggingFaceKind,
    RandomInit,
    check_source_options,
    load_or_explain,
    parse_random_init,
    torch_dtype,
)
from megdecode.latents.registry import BatchCollector, LatentResult, register_kind
from megdecode.latents.stimuli import Stimuli

VAE_LAYOUTS = ("flat", "tokens")


@dataclass
class VaeOptions:
    """Options of the ``diffusers_vae`` kind (see backbones.schema.yaml)."""

    model: str = ""
    revision: str = "main"
    subfolder: str = ""
    image_size: int = 64
    sample: str = "mean"
    scale: bool = True
    layout: str = "flat"
    dtype: str = "float32"
    batch_size: int = 16
    device: str = "auto"
    random_init: RandomInit | None = None

    def __post_init__(self) -> None:
        self.random_init = parse_random_init(self.random_init, "diffusers_vae")
        check_source_options(self.model, self.random_init, "diffusers_vae")
        if self.layout not in VAE_LAYOUTS:
            raise ValueError(f"diffusers_vae layout must be one of {VAE_LAYOUTS}, got {self.layout!r}")
        if self.sample != "mean":
            raise ValueError("diffusers_vae sample: only 'mean' (deterministic) is supported")


def images_to_tensor(images: list[np.ndarray]):
    """uint8 RGB (H, W, 3) images -> float tensor (B, 3, H, W) in [-1, 1], as the SD VAE expects."""
    import torch

    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


@register_kind("diffusers_vae")
class DiffusersVae(HuggingFaceKind):
    """Posterior mean of the VAE encoder times ``scaling_factor``, flat (C*h*w) or (h*w, C) tokens."""

    Options = VaeOptions

    def pretrained_label(self) -> str:
        return f"AutoKL ({self.options.model})"

    def compute(self, stimuli: Stimuli, threads: int = 1, weights_dir: str | None = None) -> LatentResult:
        import torch
        from diffusers import AutoencoderKL

        opts: VaeOptions = self.options
        source, revision = self.model_source(threads, weights_dir)
        kwargs = {"subfolder": opts.subfolder} if opts.subfolder else {}
        vae = load_or_explain(AutoencoderKL.from_pretrained, source, revision, "VAE", **kwargs)
        vae = vae.eval().to(device=resolve_device(opts.device), dtype=torch_dtype(opts.dtype))
        param = next(vae.parameters())
        factor = float(vae.config.scaling_factor) if opts.scale else 1.0
        collector = BatchCollector(len(stimuli))
        with torch.inference_mode():
            for idx in self.image_batches(stimuli):
                x = images_to_tensor([stimuli.load_rgb(i, opts.image_size) for i in idx])
                z = vae.encode(x.to(device=param.device, dtype=param.dtype)).latent_dist.mean * factor
                z = z.float().cpu().numpy()
                if opts.layout == "tokens":
                    z = z.reshape(z.shape[0], z.shape[1], -1).transpose(0, 2, 1)
                else:
                    z = z.reshape(z.shape[0], -1)
                collector.add(idx, z)
        latents = collector.result()
        output = f"latent_dist.mean x {factor:g} ({opts.layout})"
        preprocessing = {"resize": [opts.image_size, opts.image_size], "range": [-1, 1]}
        return LatentResult(latents, self.provenance(vae, revision, output, None, preprocessing))
