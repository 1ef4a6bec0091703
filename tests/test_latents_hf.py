"""Hugging Face kinds on tiny random models built here, saved to tmp and loaded back offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from latents_fixtures import make_stimuli

from megdecode.io import load_npy
from megdecode.latents import build_random_backbone, compute_latents
from megdecode.latents.hf_common import ModelNotAvailableError

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> tuple[Path, Path]:
    return make_stimuli(tmp_path_factory.mktemp("stimuli"), size=32)


def run(tmp: Path, stimuli, name: str, spec: dict, weights: Path | None = None) -> tuple[np.ndarray, dict]:
    """compute_latents as the workflow calls it; returns (latents, sidecar)."""
    table, images = stimuli
    out = tmp / name
    compute_latents(name, spec, table, images, out, 1, weights)
    return load_npy(out / "latents.npy"), json.loads((out / "latents.json").read_text())


def built(tmp: Path, name: str, spec: dict, seed: int = 0) -> Path:
    out = tmp / "pretrained" / name
    build_random_backbone(name, spec, out, seed=seed)
    return out


def test_random_dinov2_shapes_determinism_and_sidecar(tmp_path, stimuli) -> None:
    ri = {"architecture": "dinov2", **TINY, "image_size": 32, "patch_size": 8}
    spec = {"kind": "huggingface_vision", "label": "", "options": {"random_init": ri, "batch_size": 5}}
    weights = built(tmp_path, "dino", spec)
    assert (weights / "model.safetensors").is_file() and (weights / "preprocessor_config.json").is_file()
    cls, meta = run(tmp_path, stimuli, "dino", spec, weights)
    assert cls.shape == (12, 32) and cls.dtype == np.float32
    assert meta["pretrained"] is False and meta["random_init"] is True
    assert meta["label"] == "DINOv2 (random init)" and meta["model_class"] == "Dinov2Model"
    again, _ = run(tmp_path, stimuli, "dino_again", spec, weights)
    np.testing.assert_array_equal(cls, again)  # same weights + same images -> same numbers
    rebuilt, _ = run(tmp_path, stimuli, "dino_rebuilt", spec, built(tmp_path, "dino_rebuilt", spec))
    assert not np.allclose(cls, rebuilt)  # another backbone name -> another seed -> other weights
    same_seed = built(tmp_path / "b", "dino", spec)
    np.testing.assert_array_equal(cls, run(tmp_path, stimuli, "dino_same", spec, same_seed)[0])
    tokens_spec = {**spec, "options": {**spec["options"], "output": "tokens"}}
    tokens, meta = run(tmp_path, stimuli, "dino_tokens", tokens_spec, weights)
    assert tokens.shape == (12, 1 + 16, 32) and meta["shape"] == [12, 17, 32]  # CLS + (32/8)^2 patches
    np.testing.assert_allclose(tokens[:, 0], cls, rtol=1e-5, atol=1e-6)
    mean_spec = {**spec, "options": {**spec["options"], "output": "mean_tokens", "layer": 1}}
    mean, _ = run(tmp_path, stimuli, "dino_mean", mean_spec, weights)
    assert mean.shape == (12, 32)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A full tiny CLIP checkpoint (vision + text + processor), laid out as openai/clip-vit-large-patch14."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from megdecode.latents.random_init import byte_level_clip_tokenizer

    tokenizer = byte_level_clip_tokenizer(77)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # as in the real checkpoint's config.json, each tower's config repeats projection_dim
    text = {
        **TINY,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 77,
        "eos_token_id": eos,
        "projection_dim": 16,
    }
    vision = {**TINY, "image_size": 32, "patch_size": 8, "projection_dim": 16}
    config = CLIPConfig(text_config={**text, "pad_token_id": eos}, vision_config=vision, projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(config)
    out = tmp_path_factory.mktemp("clip")
    model.save_pretrained(out)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)
    return out


def test_clip_checkpoint_vision_and_text_from_local_dir(tmp_path, stimuli, clip_dir) -> None:
    vision = {"kind": "huggingface_vision", "options": {"model": str(clip_dir), "output": "image_embeds"}}
    emb, meta = run(tmp_path, stimuli, "clip_vision", vision)
    assert emb.shape == (12, 16) and meta["model_class"] == "CLIPVisionModelWithProjection"
    assert meta["pretrained"] is True and meta["revision"] is None  # a local folder: no revision
    tokens, _ = run(
        tmp_path, stimuli, "clip_tokens", {**vision, "options": {**vision["options"], "output": "tokens"}}
    )
    assert tokens.shape == (12, 17, 32)
    proj_spec = {**vision, "options": {**vision["options"], "output": "image_embeds_tokens"}}
    projected, _ = run(tmp_path, stimuli, "clip_proj_tokens", proj_spec)
    assert projected.shape == (12, 17, 16)
    np.testing.assert_allclose(projected[:, 0], emb, rtol=1e-4, atol=1e-5)  # CLS token = image_embeds

    text = {"kind": "huggingface_text", "options": {"model": str(clip_dir), "template": "a {colour} {shape}"}}
    mean, meta = run(tmp_path, stimuli, "clip_text", text)
    assert mean.shape == (12, 32) and meta["preprocessing"]["example_caption"] == "a red square"
    assert meta["model_class"] == "CLIPTextModelWithProjection"
    # same caption -> same latent; different captions -> different latents
    np.testing.assert_array_equal(mean[0], mean[1])
    assert not np.allclose(mean[0], mean[2])
    embeds, _ = run(
        tmp_path,
        stimuli,
        "clip_text_embeds",
        {**text, "options": {**text["options"], "output": "text_embeds"}},
    )
    assert embeds.shape == (12, 16)
    again, _ = run(tmp_path, stimuli, "clip_text_again", text)
    np.testing.assert_array_equal(mean, again)


def test_random_clip_text_built_by_the_workflow_path(tmp_path, stimuli) -> None:
    spec = {
        "kind": "huggingface_text",
        "options": {"random_init": {**TINY, "max_length": 16}, "max_length": 16},
    }
    weights = built(tmp_path, "cliptext", spec)
    emb, meta = run(tmp_path, stimuli, "cliptext", spec, weights)
    assert emb.shape == (12, 32) and meta["label"] == "CLIP-Text (random init)"


def test_random_autoencoder_kl_flat_and_tokens(tmp_path, stimuli) -> None:
    ri = {"hidden_size": 8, "num_hidden_layers": 2, "latent_channels": 4, "image_size": 16}
    spec = {"kind": "diffusers_vae", "options": {"random_init": ri, "image_size": 16, "batch_size": 5}}
    weights = built(tmp_path, "vae", spec)
    flat, meta = run(tmp_path, stimuli, "vae", spec, weights)
    assert flat.shape == (12, 4 * 8 * 8) and meta["label"] == "AutoKL (random init)"  # 2 blocks: /2
    tok_spec = {**spec, "options": {**spec["options"], "layout": "tokens"}}
    tokens, _ = run(tmp_path, stimuli, "vae_tokens", tok_spec, weights)
    assert tokens.shape == (12, 64, 4)
    np.testing.assert_allclose(tokens.transpose(0, 2, 1).reshape(12, -1), flat, rtol=1e-6)
    # the same folder named as options.model loads through the same from_pretrained path
    local, meta = run(
        tmp_path,
        stimuli,
        "vae_local",
        {"kind": "diffusers_vae", "options": {"model": str(weights), "image_size": 16}},
    )
    np.testing.assert_array_equal(local, flat)
    assert meta["pretrained"] is True


def test_missing_hub_model_error_names_id_and_download_command(tmp_path, stimuli) -> None:
    spec = {"kind": "huggingface_vision", "options": {"model": "facebook/dinov2-giant", "revision": "main"}}
    with pytest.raises(ModelNotAvailableError) as err:
        run(tmp_path, stimuli, "missing", spec)
    message = str(err.value)
    assert "'facebook/dinov2-giant'" in message
    assert "hf download facebook/dinov2-giant --revision main" in message
    assert "local directory" in message
    assert not (tmp_path / "missing" / "latents.npy").exists()


def test_missing_local_dir_and_conflicting_options(tmp_path, stimuli) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        run(tmp_path, stimuli, "nodir", {"kind": "huggingface_vision", "options": {"model": "./no/such/dir"}})
    both = {"model": "x/y", "random_init": {}}
    with pytest.raises(ValueError, match="either options.model or options.random_init"):
        run(tmp_path, stimuli, "both", {"kind": "huggingface_vision", "options": both})
    with pytest.raises(ValueError, match="random_init set but no built model"):
        run(tmp_path, stimuli, "unbuilt", {"kind": "huggingface_vision", "options": {"random_init": {}}})
    with pytest.raises(ValueError, match="does not fit kind"):
        build_random_backbone(
            "x",
            {"kind": "diffusers_vae", "options": {"random_init": {"architecture": "dinov2"}}},
            tmp_path / "x",
        )


def test_model_path_without_dot_slash_mentions_the_similar_local_folder(
    tmp_path, stimuli, monkeypatch
) -> None:
    """`models/dinov2` (not a folder here) reads as a Hub id; a similar local folder is pointed out."""
    (tmp_path / "models" / "dinov2-small").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spec = {"kind": "huggingface_vision", "options": {"model": "models/dinov2-smal", "revision": "main"}}
    with pytest.raises(ModelNotAvailableError) as err:
        run(tmp_path, stimuli, "typo", spec)
    assert "a local folder of a similar name exists: './models/dinov2-small'" in str(err.value)
    assert "model: ./models/dinov2-small" in str(err.value)


class _NotATensor:
    """Stands for any pickled object that torch.load(weights_only=True) refuses."""


def test_pickled_bin_weight_file_refusal_names_the_file(tmp_path, stimuli) -> None:
    import torch
    import transformers

    config = transformers.Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=28,
        patch_size=14,
    )  # fmt: skip
    folder = tmp_path / "binmodel"
    config.save_pretrained(folder)
    state = dict(transformers.Dinov2Model(config).state_dict(), extra=_NotATensor())
    torch.save(state, folder / "pytorch_model.bin")
    spec = {"kind": "huggingface_vision", "options": {"model": str(folder)}}
    with pytest.raises(ModelNotAvailableError) as err:
        run(tmp_path, stimuli, "pickled", spec)
    message = str(err.value)
    assert f"refused to load {folder / 'pytorch_model.bin'}" in message and "safetensors" in message
