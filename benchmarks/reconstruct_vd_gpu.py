"""GPU benchmark: the Versatile Diffusion generator at the paper's sizes (random weights, no download).

Builds VD-sized components (SD-1 image UNet with cross-attention 768, SD VAE, CLIP ViT-L/14 image encoder),
saves them, loads them through ``VersatileDiffusionGenerator`` (the workflow's code path) and times img2img
reconstruction from predicted 257 x 768 tokens + 4 x 64 x 64 AutoKL latents (strength 0.75, 50 steps,
guidance 7.5, 512 px, batch 8) in float16 and float32. Needs a CUDA GPU; writes ``$OUT/vd_gpu.json``.

Run from the repository root: ``PYTHONPATH=src python benchmarks/reconstruct_vd_gpu.py``.
Measured on one NVIDIA H200 (torch 2.11.0+cu130, diffusers 0.42.1): float16 0.26 s/image (peak 5.8 GiB),
float32 1.13 s/image (peak 11.6 GiB); same seed -> identical images.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from megdecode.config import section_defaults
from megdecode.reconstruction.base import Predicted
from megdecode.reconstruction.versatile_diffusion import VDParams, VersatileDiffusionGenerator

N_IMAGES = 16


def build_components(root: str) -> None:
    """Random-init components with Versatile Diffusion's shapes, saved like a local checkpoint."""
    torch.manual_seed(0)
    with torch.device("cuda"):
        UNet2DConditionModel(sample_size=64, cross_attention_dim=768).save_pretrained(f"{root}/image_unet")
        AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        ).save_pretrained(f"{root}/vae")
        config = CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
            projection_dim=768,
        )
        CLIPVisionModelWithProjection(config).save_pretrained(f"{root}/image_encoder")
    DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        num_train_timesteps=1000,
    ).save_pretrained(f"{root}/scheduler")


def predictions(n: int, first: int | None = None) -> dict[str, Predicted]:
    rng = np.random.default_rng(0)
    ids = np.array([f"img{i}" for i in range(n)])
    out = {}
    for name, dim in (("clipv", 257 * 768), ("autokl", 4 * 64 * 64)):
        x = rng.standard_normal((n, dim)).astype(np.float32)
        out[name] = Predicted(ids[:first], x[:first], np.zeros(dim, np.float32), np.ones(dim, np.float32))
    return out


def main() -> None:
    out_dir = Path(os.environ.get("OUT", "/tmp"))
    root = "/tmp/vd_full"
    t0 = time.time()
    build_components(root)
    res: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    res["build_save_s"] = round(time.time() - t0, 1)
    shapes = {"clipv": (257, 768)}
    for dtype in ("float16", "float32"):
        torch.cuda.reset_peak_memory_stats()
        t = time.time()
        params = VDParams.from_config({
            **section_defaults("reconstruction", "versatile_diffusion"),
            "model": root, "vision_backbone": "clipv", "autokl_backbone": "autokl", "strength": 0.75,
            "steps": 50, "guidance_scale": 7.5, "height": 512, "batch_size": 8, "device": "cuda",
            "dtype": dtype,
        })  # fmt: skip
        gen = VersatileDiffusionGenerator(params, seed=0)
        load_s = time.time() - t
        gen.generate(predictions(N_IMAGES, first=8), shapes)  # warm-up
        torch.cuda.synchronize()
        t = time.time()
        images = gen.generate(predictions(N_IMAGES), shapes)
        torch.cuda.synchronize()
        gen_s = time.time() - t
        again = gen.generate(predictions(N_IMAGES, first=8), shapes)
        res[dtype] = {
            "load_s": round(load_s, 1),
            "images": list(images.shape),
            "s_per_image": round(gen_s / N_IMAGES, 3),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            "deterministic": bool(np.array_equal(images[:8], again)),
        }
        print(dtype, res[dtype], flush=True)
        del gen
        torch.cuda.empty_cache()
    (out_dir / "vd_gpu.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
