"""Shape, masking and routing tests of the brain-module building blocks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import brain_config
from torch.nn import functional as F

from megdecode.config import load_schema, section_defaults
from megdecode.models import (
    BrainModule,
    BrainModuleConfig,
    ConvBlock,
    ConvEncoder,
    ConvMLP,
    MLPHead,
    SpatialAttention,
    SubjectLayers,
    TemporalAggregation,
    TokenHead,
    fourier_embedding,
)


def _positions(n: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed))


def test_fourier_embedding_shape_and_range():
    emb = fourier_embedding(_positions(7), n_freqs=4)
    assert emb.shape == (7, 2 * 4 * 4)
    assert torch.all(emb.abs() <= 1.0 + 1e-6)
    # frequency (0, 0): cos = 1, sin = 0 for every sensor
    assert torch.allclose(emb[:, 0], torch.ones(7)) and torch.allclose(emb[:, 16], torch.zeros(7))
    with pytest.raises(ValueError, match="channels, 2"):
        fourier_embedding(torch.rand(5, 3), 4)


def test_spatial_attention_shape_weights_and_mask():
    torch.manual_seed(0)
    layer = SpatialAttention(_positions(10), n_out=6, n_freqs=4, dropout_radius=0.0).eval()
    x = torch.randn(3, 10, 20)
    assert layer(x).shape == (3, 6, 20)
    weights = layer.attention()
    assert weights.shape == (6, 10) and torch.allclose(weights.sum(-1), torch.ones(6))
    mask = torch.ones(10, dtype=torch.bool)
    mask[[2, 7]] = False
    x2 = x.clone()
    x2[:, [2, 7]] = 1e3  # values of missing channels must not matter
    assert torch.allclose(layer(x, mask), layer(x2, mask))
    assert not torch.allclose(layer(x), layer(x2))


def test_spatial_attention_per_sample_masks_match_single_masks():
    layer = SpatialAttention(_positions(8), n_out=4, n_freqs=3, dropout_radius=0.0).eval()
    x = torch.randn(4, 8, 5)
    masks = torch.ones(4, 8, dtype=torch.bool)
    masks[1, 0] = masks[3, 0] = False
    out = layer(x, masks)
    for i in range(4):
        assert torch.allclose(out[i], layer(x[i : i + 1], masks[i])[0], atol=1e-6)


def test_spatial_attention_disc_dropout_only_in_training():
    layer = SpatialAttention(_positions(30), n_out=4, n_freqs=3, dropout_radius=0.3)
    x = torch.randn(2, 30, 5)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    a = layer(x, generator=torch.Generator().manual_seed(1))
    b = layer(x, generator=torch.Generator().manual_seed(1))
    c = layer(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_subject_layers_routing():
    layer = SubjectLayers(5, 5, n_subjects=3)
    x = torch.randn(4, 5, 7)
    subject = torch.tensor([0, 2, 0, 2])
    out = layer(x, subject)
    assert out.shape == (4, 5, 7)
    assert torch.allclose(out[0], layer.weight[0] @ x[0]) and torch.allclose(out[1], layer.weight[2] @ x[1])
    with torch.no_grad():
        layer.weight[2] += 1.0  # changing subject 2's matrix changes only subject 2's samples
    out2 = layer(x, subject)
    assert torch.equal(out2[[0, 2]], out[[0, 2]]) and not torch.allclose(out2[[1, 3]], out[[1, 3]])
    layer.zero_grad()
    layer(x[:2], torch.tensor([1, 1])).sum().backward()
    grad_norms = layer.weight.grad.flatten(1).norm(dim=1)
    assert grad_norms[1] > 0 and grad_norms[0] == 0 and grad_norms[2] == 0
    with pytest.raises(IndexError):
        layer(x, torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_conv_block_keeps_time_length(index):
    block = ConvBlock(6, 8, index, kernel=3, dilation_period=5)
    assert block(torch.randn(2, 6, 33)).shape == (2, 8, 33)
    assert ConvEncoder(6, 8, n_blocks=3)(torch.randn(2, 6, 33)).shape == (2, 8, 33)


@pytest.mark.parametrize("mode", ["affine", "mean", "attention"])
def test_aggregation_shapes_and_commutes_with_projection(mode):
    agg = TemporalAggregation(channels=6, n_times=11, mode=mode)
    x = torch.randn(3, 6, 11)
    assert agg(x).shape == (3, 6)
    if mode != "attention":  # aggregation then Linear == 1x1 conv then aggregation (the paper's order)
        proj = torch.nn.Linear(6, 9)
        conv_first = agg(torch.einsum("oc,bct->bot", proj.weight, x) + proj.bias[:, None])
        if mode == "affine":  # sum_t a_t (W x_t + b) + c = W sum_t a_t x_t + b sum_t a_t + c
            expected = proj(agg(x) - agg.bias) + proj.bias * (agg.time_weight.sum() - 1.0) + agg.bias
        else:
            expected = proj(agg(x))
        assert torch.allclose(conv_first, expected, atol=1e-5)
    with pytest.raises(ValueError):
        TemporalAggregation(6, 11, mode="max")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["affine", "mean", "attention"])
def test_aggregation_through_linear_equals_the_conv_at_every_time_step(mode):
    gen = torch.Generator().manual_seed(3)
    agg = TemporalAggregation(channels=9, n_times=11, mode=mode)
    with torch.no_grad():
        for param in agg.parameters():  # time weights that do not sum to 1, a bias, a score
            param.normal_(generator=gen)
    x = torch.randn(3, 6, 11, generator=gen)
    weight, bias = torch.randn(9, 6, generator=gen), torch.randn(9, generator=gen)
    per_step = agg(torch.einsum("oc,bct->bot", weight, x) + bias[:, None])
    torch.testing.assert_close(agg.through_linear(x, weight, bias), per_step)


def test_heads_flat_and_tokens():
    assert MLPHead(16, 10)(torch.randn(4, 16)).shape == (4, 10)
    head = TokenHead(16, tokens=257, dim=768, rank=4)
    assert head(torch.randn(2, 16)).shape == (2, 257 * 768)
    assert TokenHead(16, tokens=3, dim=5, rank=0)(torch.randn(2, 16)).shape == (2, 15)


@pytest.mark.parametrize("latent_shape", [(12,), (5, 7)])
def test_brain_module_shapes(latent_shape):
    cfg = brain_config(
        spatial_channels=8, fourier_freqs=3, hidden=8, n_blocks=2, out_channels=16, token_rank=4
    )
    model = BrainModule(cfg, _positions(10), n_subjects=2, n_times=25, latent_shape=latent_shape)
    out = model(torch.randn(4, 10, 25), torch.tensor([0, 1, 1, 0]))
    dim = 1
    for d in latent_shape:
        dim *= d
    assert out["clip"].shape == (4, dim) and out["mse"].shape == (4, dim)
    with pytest.raises(ValueError, match="unknown brain_module key.*'hiden' \\(did you mean 'hidden'"):
        BrainModuleConfig.from_dict({**section_defaults("brain_module"), "hiden": 3})


def test_spatial_attention_inference_cache_follows_weight_updates():
    layer = SpatialAttention(_positions(6), n_out=3, n_freqs=2, dropout_radius=0.0).eval()
    x = torch.randn(2, 6, 4)
    with torch.no_grad():
        first = layer(x)
        assert torch.equal(layer(x), first)
        layer.heads.add_(0.5)  # in-place update (as an optimizer step) must invalidate the cache
        assert torch.allclose(layer(x), torch.matmul(layer.attention(), x))
        assert not torch.allclose(layer(x), first)


def test_brain_module_built_in_inference_mode_runs():
    """Parameters created under inference_mode have no version counter: the attention cache must cope."""
    with torch.inference_mode():
        brain = BrainModule(
            brain_config(spatial_channels=6, fourier_freqs=2, hidden=8, n_blocks=1, out_channels=8),
            _positions(5),
            1,
            12,
            (4,),
        ).eval()
        out = brain(torch.randn(2, 5, 12), torch.zeros(2, dtype=torch.long))
    assert out["clip"].shape == (2, 4)


def test_conv_mlp_shape_and_maths():
    stage = ConvMLP(6, 9)
    assert stage.conv1.weight.shape == (12, 6, 1) and stage.conv2.weight.shape == (9, 12, 1)
    x = torch.randn(3, 6, 11)
    out = stage(x)
    assert out.shape == (3, 9, 11)
    t = 4  # every time step on its own: 1x1 conv, GELU, 1x1 conv
    hidden = F.gelu(stage.conv1.weight[:, :, 0] @ x[:, :, t].T + stage.conv1.bias[:, None])
    expected = stage.conv2.weight[:, :, 0] @ hidden + stage.conv2.bias[:, None]
    torch.testing.assert_close(out[:, :, t], expected.T)


@pytest.mark.parametrize("aggregation", ["affine", "mean", "attention"])
def test_brain_module_output_stages(aggregation):
    """conv_mlp: the MLP at every time step, then aggregation of out_channels; linear: aggregation, Linear."""
    sizes = {"spatial_channels": 8, "fourier_freqs": 3, "hidden": 8, "n_blocks": 1, "out_channels": 16}
    x, subject = torch.randn(4, 10, 25), torch.tensor([0, 1, 1, 0])
    torch.manual_seed(0)
    cfg = brain_config(**sizes, output_stage="conv_mlp", aggregation=aggregation)
    mlp = BrainModule(cfg, _positions(10), 2, 25, (12,)).eval()
    assert mlp.project is None and mlp.final.conv1.weight.shape == (16, 8, 1)
    with torch.no_grad():
        if aggregation == "affine":
            mlp.aggregate.bias.fill_(0.3)
        encoded = mlp.encoder(mlp.subject(mlp.mix(mlp.spatial(x)), subject))
        expected = mlp.aggregate(mlp.final(encoded))
        torch.testing.assert_close(mlp.features(x, subject), expected)
        assert expected.shape == (4, 16)
        # the GELU does not commute with the aggregation: the MLP after it is a different function
        if aggregation != "attention":
            swapped = mlp.final(mlp.aggregate(encoded)[:, :, None])[:, :, 0]
            assert (swapped - expected).abs().max() > 1e-3
    out = mlp(x, subject)
    assert out["clip"].shape == (4, 12) and out["mse"].shape == (4, 12)
    cfg = brain_config(**sizes, output_stage="linear", aggregation=aggregation)
    linear = BrainModule(cfg, _positions(10), 2, 25, (12,)).eval()
    assert linear.final is None and linear.project.weight.shape == (16, 8)
    with torch.no_grad():
        encoded = linear.encoder(linear.subject(linear.mix(linear.spatial(x)), subject))
        torch.testing.assert_close(linear.features(x, subject), linear.project(linear.aggregate(encoded)))
    keys = set(linear.state_dict())  # the linear stage keeps the parameter names of earlier checkpoints
    assert {"project.weight", "project.bias"} <= keys and not any(k.startswith("final.") for k in keys)
    with pytest.raises(ValueError, match="unknown output_stage"):
        BrainModule(brain_config(**sizes, output_stage="mlp"), _positions(10), 2, 25, (12,))  # type: ignore[arg-type]


def test_brain_module_config_has_no_defaults_of_its_own():
    """Every field comes from the schema (the only place defaults live); the paper's output stage is it."""
    schema = load_schema()["properties"]["brain_module"]["properties"]
    fields = dataclasses.fields(BrainModuleConfig)
    assert {f.name for f in fields} == set(schema)
    assert all(f.default is dataclasses.MISSING for f in fields)
    assert schema["output_stage"]["default"] == "conv_mlp" and "[S]" in schema["output_stage"]["description"]
    with pytest.raises(ValueError, match="brain_module lacks"):
        BrainModuleConfig.from_dict({"hidden": 3})
