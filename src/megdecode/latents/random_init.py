"""Build small randomly initialised models and save them with ``save_pretrained``.

The workflow then loads them through exactly the ``from_pretrained`` path used for Hub ids, so the real
loading code runs offline. Global RNG state is left untouched (``torch.random.fork_rng``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from megdecode.latents.hf_common import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomInit,
    resolve_architecture,
)

log = logging.getLogger(__name__)


def byte_level_clip_tokenizer(max_length: int = 77):
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (+ end-of-word forms), no merges.

    Real CLIP vocabularies cannot be downloaded here; this one tokenises any text, deterministically.
    """
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _transformer_sizes(ri: RandomInit) -> dict[str, int]:
    """The layer sizes every random transformer config takes from ``ri``."""
    return {
        "hidden_size": ri.hidden_size,
        "num_hidden_layers": ri.num_hidden_layers,
        "num_attention_heads": ri.num_attention_heads,
        "intermediate_size": ri.intermediate_size,
    }


def _square_image_sizes(ri: RandomInit) -> dict[str, dict[str, int]]:
    """Image processor resize + centre crop to ``ri.image_size`` squares."""
    return {
        "size": {"shortest_edge": ri.image_size},
        "crop_size": {"height": ri.image_size, "width": ri.image_size},
    }


def _dinov2(ri: RandomInit):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(**_transformer_sizes(ri), image_size=ri.image_size, patch_size=ri.patch_size)
    processor = BitImageProcessor(
        **_square_image_sizes(ri), do_center_crop=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    return Dinov2Model(config), processor


def _clip_vision(ri: RandomInit):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        **_transformer_sizes(ri),
        image_size=ri.image_size,
        patch_size=ri.patch_size,
        projection_dim=ri.projection_dim,
    )
    processor = CLIPImageProcessor(**_square_image_sizes(ri), image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return CLIPVisionModelWithProjection(config), processor


def _clip_text(ri: RandomInit):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tokenizer = byte_level_clip_tokenizer(ri.max_length)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        **_transformer_sizes(ri),
        max_position_embeddings=ri.max_length,
        projection_dim=ri.projection_dim,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return CLIPTextModelWithProjection(config), tokenizer


def _autoencoder_kl(ri: RandomInit):
    from diffusers import AutoencoderKL

    n_blocks = max(1, ri.num_hidden_layers)
    model = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        block_out_channels=(ri.hidden_size,) * n_blocks,
        layers_per_block=1,
        latent_channels=ri.latent_channels,
        norm_num_groups=math.gcd(ri.hidden_size, 8),
        sample_size=ri.image_size,
    )
    return model, None


BUILDERS = {
    "dinov2": _dinov2,
    "clip_vision": _clip_vision,
    "clip_text": _clip_text,
    "autoencoder_kl": _autoencoder_kl,
}


def build_random_model(kind: str, ri: RandomInit, out_dir: Path | str, seed: int) -> str:
    """Initialise the model of ``ri`` from ``seed``; save it (+ processor/tokenizer) in ``out_dir``.

    Returns the architecture name. ``out_dir`` must be a fresh path (the caller writes atomically).
    """
    import torch

    arch = resolve_architecture(kind, ri)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, companion = BUILDERS[arch](ri)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if companion is not None:
        companion.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built random %s (%d parameters, seed %d) in %s", arch, n_params, seed, out_dir)
    return arch
