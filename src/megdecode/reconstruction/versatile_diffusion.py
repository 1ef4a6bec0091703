"""Generator ``versatile_diffusion``: the paper's generator, driven step by step from predicted latents.

No stock diffusers pipeline takes *predicted* CLIP tokens plus a predicted start latent, so this module loads
the components of a Versatile Diffusion checkpoint (``image_unet``, ``vae``, ``scheduler``, and for the
unconditional embedding ``image_encoder``; optionally ``text_unet`` for CLIP-Text guidance) and runs the
denoising loop itself, as Brain-Diffuser does:

- image conditioning: predicted CLIP-Vision tokens (257 x 768 for ViT-L/14), in VD's space (projected hidden
  states divided by the norm of the class token; ``normalize_tokens`` re-applies that division);
- optional text conditioning: predicted CLIP-Text tokens mixed in through VD's dual attention (``mix_ratio``);
- image-to-image: the predicted AutoKL latent, noised to ``strength`` of the schedule, is the start point
  (pure noise when no AutoKL backbone is configured);
- classifier-free guidance against the embedding of a uniform grey image (as VD's own pipelines).

The real weights are ``shi-labs/versatile-diffusion`` (Hub id or a local directory); tests build tiny
randomly initialised components and run the same code path offline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from megdecode.config import dataclass_from_section
from megdecode.devices import resolve_device
from megdecode.reconstruction.base import Predicted, to_uint8

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class VDParams:
    """Config ``reconstruction.versatile_diffusion`` (Brain-Diffuser: strength 0.75, 50 steps, 7.5)."""

    model: str
    revision: str
    vision_backbone: str
    text_backbone: str
    autokl_backbone: str
    autokl_scaled: bool
    normalize_tokens: bool
    strength: float
    steps: int
    guidance_scale: float
    mix_ratio: float
    height: int
    batch_size: int
    device: str
    dtype: str

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> VDParams:
        params = dataclass_from_section(cls, cfg, "reconstruction.versatile_diffusion")
        if not 0.0 < params.strength <= 1.0:
            raise ValueError(
                f"reconstruction.versatile_diffusion.strength must be in (0, 1], got {params.strength}"
            )
        return params


def offline_hint(model: str, revision: str) -> str:
    """How to make a Versatile Diffusion checkpoint available without network at run time."""
    return (
        f"could not load Versatile Diffusion '{model}' (revision {revision}). Runs are offline "
        f"(HF_HUB_OFFLINE=1): pre-download it once with `huggingface-cli download {model} --revision "
        f"{revision}` on a machine with network, or set reconstruction.versatile_diffusion.model to a local "
        "directory holding image_unet/, vae/, scheduler/ and image_encoder/ (+ text_unet/ for text guidance)"
    )


def _load(cls: Any, params: VDParams, subfolder: str, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(params.model, subfolder=subfolder, revision=params.revision, **kwargs)
    except (OSError, ValueError) as err:
        raise OSError(
            f"{offline_hint(params.model, params.revision)} [missing: {subfolder}/: {err}]"
        ) from err


_DUAL_CLASS: Any = None


def _dual_transformer_class() -> Any:
    """VD's DualTransformer2DModel, accepting (and ignoring) the ``encoder_attention_mask`` that
    diffusers 0.42's UNet blocks pass to every transformer (the stock class rejects it)."""
    global _DUAL_CLASS
    if _DUAL_CLASS is None:
        from diffusers.models import DualTransformer2DModel

        class _Dual(DualTransformer2DModel):
            def forward(self, hidden_states, encoder_hidden_states=None, timestep=None, attention_mask=None,
                        cross_attention_kwargs=None, return_dict=True, **_ignored):  # fmt: skip
                return super().forward(
                    hidden_states,
                    encoder_hidden_states,
                    timestep=timestep,
                    attention_mask=attention_mask,
                    cross_attention_kwargs=cross_attention_kwargs,
                    return_dict=return_dict,
                )

        _DUAL_CLASS = _Dual
    return _DUAL_CLASS


class VersatileDiffusionGenerator:
    """Predicted CLIP-Vision tokens (+ optional CLIP-Text tokens, AutoKL start latent) -> images."""

    name = "versatile_diffusion"

    def __init__(self, params: VDParams, seed: int) -> None:
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPVisionModelWithProjection

        self.params = params
        self.seed = seed
        self.device = torch.device(resolve_device(params.device))
        auto = "float16" if self.device.type == "cuda" else "float32"
        self.dtype = getattr(torch, auto if params.dtype == "auto" else params.dtype)
        self.unet = _load(UNet2DConditionModel, params, "image_unet", torch_dtype=self.dtype)
        self.vae = _load(AutoencoderKL, params, "vae", torch_dtype=self.dtype)
        self.scheduler = _load(DDIMScheduler, params, "scheduler")
        encoder = _load(CLIPVisionModelWithProjection, params, "image_encoder", use_safetensors=None)
        self.uncond_image = self._grey_image_tokens(encoder)
        del encoder
        self.uncond_text = None
        if params.text_backbone:
            self._add_text_guidance()
        for module in (self.unet, self.vae):
            module.to(self.device).eval()
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _grey_image_tokens(self, encoder: Any) -> Any:
        """VD's unconditional image embedding: the normalised CLIP tokens of a uniform grey image."""
        import torch

        size = encoder.config.image_size
        pixels = torch.tensor([(0.5 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
        pixels = pixels.view(1, 3, 1, 1).expand(1, 3, size, size).contiguous()
        with torch.no_grad():
            hidden = encoder(pixel_values=pixels.to(encoder.dtype)).last_hidden_state
            embeds = encoder.visual_projection(encoder.vision_model.post_layernorm(hidden))
        return (embeds / embeds[:, :1].norm(dim=-1, keepdim=True)).float()

    def _add_text_guidance(self) -> None:
        """Swap the image UNet's transformers for dual (image, text) ones, as VD's dual-guided pipeline."""
        from diffusers.models import Transformer2DModel
        from diffusers.pipelines.deprecated.versatile_diffusion import UNetFlatConditionModel

        text_unet = _load(UNetFlatConditionModel, self.params, "text_unet")
        for name, module in list(self.unet.named_modules()):
            if not isinstance(module, Transformer2DModel):
                continue
            parent_name, index = name.rsplit(".", 1)
            cfg = module.config
            dual = _dual_transformer_class()(
                num_attention_heads=cfg.num_attention_heads,
                attention_head_dim=cfg.attention_head_dim,
                in_channels=cfg.in_channels,
                num_layers=cfg.num_layers,
                norm_num_groups=cfg.norm_num_groups,
                cross_attention_dim=cfg.cross_attention_dim,
                attention_bias=cfg.attention_bias,
                sample_size=cfg.sample_size,
            )
            dual.transformers[0] = module
            dual.transformers[1] = text_unet.get_submodule(parent_name)[int(index)]
            dual.mix_ratio = self.params.mix_ratio
            dual.transformer_index_for_condition = [1, 0]  # condition order: text tokens, then image tokens
            self.unet.get_submodule(parent_name)[int(index)] = dual
        self._duals = [m for m in self.unet.modules() if isinstance(m, _dual_transformer_class())]
        if not self._duals:
            raise ValueError(
                f"{self.params.model}: image_unet has no transformer blocks to receive text guidance"
            )

    def _condition(self, image_tokens: Any, text_tokens: Any | None) -> tuple[Any, Any]:
        """(conditional, unconditional) encoder states for a batch."""
        import torch

        n = len(image_tokens)
        uncond = self.uncond_image.expand(n, -1, -1)
        if text_tokens is None:
            return image_tokens, uncond
        for dual in self._duals:
            dual.condition_lengths = [text_tokens.shape[1], image_tokens.shape[1]]
        uncond_text = torch.zeros_like(text_tokens)  # no text -> no text-driven residual under CFG
        return torch.cat([text_tokens, image_tokens], 1), torch.cat([uncond_text, uncond], 1)

    def _tokens(self, pred: Predicted, shape: tuple[int, ...] | None) -> Any:
        import torch

        x = torch.from_numpy(np.asarray(pred.latents, dtype=np.float32))
        dim = self.unet.config.cross_attention_dim
        x = x.reshape(len(x), -1, dim) if shape is None else x.reshape(len(x), *shape)
        if x.ndim != 3 or x.shape[-1] != dim:
            raise ValueError(
                f"predicted tokens of shape {tuple(x.shape[1:])} do not fit {self.params.model}: its UNet "
                f"expects (tokens, {dim}); use a backbone with output image_embeds_tokens (CLIP ViT-L/14: "
                "257 x 768)"
            )
        if self.params.normalize_tokens:
            x = x / x[:, :1].norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return x

    def denoise(self, image_tokens: Any, text_tokens: Any | None, start: Any | None, seed: int) -> np.ndarray:
        """Run the (img2img) DDIM loop for one batch and decode to uint8 images."""
        import torch

        p = self.params
        gen = torch.Generator().manual_seed(seed)
        n = len(image_tokens)
        cond, uncond = self._condition(image_tokens, text_tokens)
        guided = p.guidance_scale > 1.0
        states = (torch.cat([uncond, cond]) if guided else cond).to(self.device, self.dtype)
        self.scheduler.set_timesteps(p.steps)
        timesteps = self.scheduler.timesteps
        side = p.height // self.vae_scale
        shape = (n, self.unet.config.in_channels, side, side)
        noise = torch.randn(shape, generator=gen)
        if start is None:
            latents = noise * self.scheduler.init_noise_sigma
        else:
            init = start if p.autokl_scaled else start * self.vae.config.scaling_factor
            n_keep = min(int(p.steps * p.strength), p.steps)
            timesteps = timesteps[p.steps - n_keep :]
            latents = self.scheduler.add_noise(init, noise, timesteps[:1].repeat(n))
        latents = latents.to(self.device, self.dtype)
        with torch.no_grad():
            for t in timesteps:
                model_in = torch.cat([latents] * 2) if guided else latents
                model_in = self.scheduler.scale_model_input(model_in, t)
                eps = self.unet(model_in, t, encoder_hidden_states=states).sample
                if guided:
                    eps_u, eps_c = eps.chunk(2)
                    eps = eps_u + p.guidance_scale * (eps_c - eps_u)
                latents = self.scheduler.step(eps, t, latents, eta=0.0).prev_sample
            images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        images = (images.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return to_uint8(images)

    def generate(
        self, predictions: Mapping[str, Predicted], shapes: Mapping[str, tuple[int, ...]] | None = None
    ) -> np.ndarray:
        """Images for every prediction of the vision backbone (other backbones aligned on its image ids)."""
        from tqdm import tqdm

        p = self.params
        shapes = dict(shapes or {})
        vision = predictions[p.vision_backbone]
        ids = vision.image_id.tolist()
        image_tokens = self._tokens(vision, shapes.get(p.vision_backbone))
        text_tokens = self._aligned(predictions, p.text_backbone, ids, shapes, tokens=True)
        start = self._aligned(predictions, p.autokl_backbone, ids, shapes, tokens=False)
        if start is not None:
            side = p.height // self.vae_scale
            start = start.reshape(len(start), self.unet.config.in_channels, side, side)
        out = []
        for b0 in tqdm(range(0, len(ids), p.batch_size), desc="versatile diffusion", mininterval=5):
            sl = slice(b0, b0 + p.batch_size)
            out.append(
                self.denoise(
                    image_tokens[sl],
                    None if text_tokens is None else text_tokens[sl],
                    None if start is None else start[sl],
                    seed=self.seed + b0,
                )
            )
        return np.concatenate(out) if out else np.zeros((0, p.height, p.height, 3), np.uint8)

    def _aligned(
        self,
        predictions: Mapping[str, Predicted],
        backbone: str,
        ids: list[str],
        shapes: Mapping[str, tuple[int, ...]],
        tokens: bool,
    ) -> Any | None:
        import torch

        if not backbone:
            return None
        pred = predictions[backbone]
        where = {str(i): k for k, i in enumerate(pred.image_id)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise KeyError(f"predictions of backbone {backbone!r} lack image {missing[0]!r}")
        aligned = Predicted(
            pred.image_id[[where[i] for i in ids]],
            pred.latents[[where[i] for i in ids]],
            pred.target_mean,
            pred.target_std,
        )
        if tokens:
            return self._tokens(aligned, shapes.get(backbone))
        return torch.from_numpy(np.asarray(aligned.latents, dtype=np.float32))
