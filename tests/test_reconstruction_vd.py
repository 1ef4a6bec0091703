"""Versatile Diffusion generator: tiny random-init components, saved locally, loaded offline, two DDIM steps.

The components are built here with the real diffusers / transformers classes of a Versatile Diffusion
checkpoint (image_unet, text_unet, vae, scheduler, image_encoder), so the workflow code path (from_pretrained
on a directory, dual attention for text, img2img from an AutoKL latent, guidance) runs end to end on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from megdecode.config import section_defaults
from megdecode.io import load_npz, save_npz, write_json
from megdecode.reconstruction import reconstruct_subject
from megdecode.reconstruction.base import Predicted
from megdecode.reconstruction.versatile_diffusion import VDParams, VersatileDiffusionGenerator

TOKENS, DIM, TEXT_TOKENS, SIDE = 17, 32, 5, 8  # CLIP-vision tokens x dim, text tokens, VAE latent side


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_vd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from diffusers.pipelines.deprecated.versatile_diffusion import UNetFlatConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("vd")
    unet_kwargs = dict(
        sample_size=SIDE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        UNet2DConditionModel(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            **unet_kwargs,
        ).save_pretrained(root / "image_unet")
        UNetFlatConditionModel(
            down_block_types=("CrossAttnDownBlockFlat", "DownBlockFlat"),
            up_block_types=("UpBlockFlat", "CrossAttnUpBlockFlat"),
            **unet_kwargs,
        ).save_pretrained(root / "text_unet")
        AutoencoderKL(
            block_out_channels=(32, 64),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=2 * SIDE,
        ).save_pretrained(root / "vae")
        config = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=DIM,
        )
        CLIPVisionModelWithProjection(config).save_pretrained(root / "image_encoder")
    DDIMScheduler(num_train_timesteps=1000).save_pretrained(root / "scheduler")
    return root


def _pred(dim: int, n: int = 3, seed: int = 0) -> Predicted:
    rng = np.random.default_rng(seed)
    ids = np.array([f"img{i}" for i in range(n)])
    return Predicted(ids, rng.standard_normal((n, dim)).astype(np.float32), np.zeros(dim), np.ones(dim))


def _params(tiny_vd: Path, **kw) -> VDParams:
    base = dict(
        model=str(tiny_vd), vision_backbone="clipv", steps=2, height=2 * SIDE, batch_size=2, device="cpu"
    )
    return VDParams.from_config({**section_defaults("reconstruction", "versatile_diffusion"), **base, **kw})


@pytest.mark.parametrize(
    "text,start", [("", ""), ("clipt", "autokl")], ids=["image-only-from-noise", "dual-guided-img2img"]
)
def test_two_denoising_steps_offline(tiny_vd: Path, text: str, start: str) -> None:
    preds = {
        "clipv": _pred(TOKENS * DIM),
        "clipt": _pred(TEXT_TOKENS * DIM, seed=1),
        "autokl": _pred(4 * SIDE**2),
    }
    shapes = {"clipv": (TOKENS, DIM), "clipt": (TEXT_TOKENS, DIM)}
    params = _params(tiny_vd, text_backbone=text, autokl_backbone=start, strength=1.0 if not start else 0.75)
    generator = VersatileDiffusionGenerator(params, seed=0)
    images = generator.generate(preds, shapes)
    assert images.shape == (3, 2 * SIDE, 2 * SIDE, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, generator.generate(preds, shapes))  # same seed, same images
    generator.seed = 1
    assert not np.array_equal(images, generator.generate(preds, shapes))


def test_conditioning_changes_the_image(tiny_vd: Path) -> None:
    params = _params(tiny_vd, guidance_scale=7.5)
    shapes = {"clipv": (TOKENS, DIM)}
    generator = VersatileDiffusionGenerator(params, seed=0)
    a = generator.generate({"clipv": _pred(TOKENS * DIM, seed=0)}, shapes)
    b = generator.generate({"clipv": _pred(TOKENS * DIM, seed=5)}, shapes)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0


def test_workflow_entry_point_runs_versatile_diffusion(tiny_vd: Path, tmp_path: Path) -> None:
    """reconstruct_subject (the rule function) on predictions.npz and latents.json as stages write them."""
    paths = {}
    for name, shape in (("clipv", (TOKENS, DIM)), ("autokl", (4, SIDE, SIDE))):
        pred = _pred(int(np.prod(shape)), seed=len(name))
        paths[name] = tmp_path / f"{name}.npz"
        save_npz(
            {"test_small_pred": pred.latents, "test_small_image_id": pred.image_id,
             "target_mean": pred.target_mean, "target_std": pred.target_std},
            paths[name],
        )  # fmt: skip
        write_json({"shape": [3, *shape]}, tmp_path / name / "latents.json")
    cfg = {
        "split": "test_small",
        "versatile_diffusion": {**_params(tiny_vd).__dict__, "autokl_backbone": "autokl"},
    }
    out = tmp_path / "out"
    reconstruct_subject(
        "versatile_diffusion", cfg, {k: str(v) for k, v in paths.items()}, "unused.tsv", "unused",
        str(out / "reconstructions.npz"), str(out / "images"), seed=0, subject="01",
        latents_dirs={k: str(tmp_path / k) for k in paths},
    )  # fmt: skip
    data = load_npz(out / "reconstructions.npz")
    assert data["images"].shape == (3, 2 * SIDE, 2 * SIDE, 3)
    assert len(list((out / "images").glob("*.png"))) == 3


def test_token_shape_mismatch_is_a_clear_error(tiny_vd: Path) -> None:
    generator = VersatileDiffusionGenerator(_params(tiny_vd), seed=0)
    with pytest.raises(ValueError, match=r"expects \(tokens, 32\)"):
        generator.generate({"clipv": _pred(TOKENS * 16)}, {"clipv": (TOKENS, 16)})


def test_missing_weights_error_names_the_id_and_the_fix(tmp_path: Path) -> None:
    params = VDParams.from_config(
        {**section_defaults("reconstruction", "versatile_diffusion"), "model": str(tmp_path / "no-such-vd")}
        | {"vision_backbone": "clipv", "device": "cpu"}
    )
    with pytest.raises(OSError, match="huggingface-cli download .*no-such-vd") as err:
        VersatileDiffusionGenerator(params, seed=0)
    assert "local directory" in str(err.value)
