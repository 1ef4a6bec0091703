"""Winograd convolution and the frozen real-time decoder: same outputs as the training graph."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import brain_config
from torch.nn import functional as F

from megdecode import io
from megdecode.artifacts.brain_model import load_trained_brain
from megdecode.artifacts.preprocessed import read_subject as load_subject
from megdecode.models import BrainModule, RealtimeDecoder, StreamingDecoder
from megdecode.models.winograd import winograd_conv1d, winograd_weight


@pytest.mark.parametrize("n_times", [1, 4, 5, 37, 181])
@pytest.mark.parametrize("dilation", [1, 2, 3, 16])
def test_winograd_equals_conv1d_in_float64(n_times, dilation):
    gen = torch.Generator().manual_seed(n_times * 100 + dilation)
    x = torch.randn(3, 5, n_times, generator=gen, dtype=torch.float64)
    w = torch.randn(7, 5, 3, generator=gen, dtype=torch.float64)
    expected = F.conv1d(x, w, padding=dilation, dilation=dilation)
    got = winograd_conv1d(x.transpose(1, 2), winograd_weight(w), dilation).transpose(1, 2)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_winograd_float32_error_is_small_and_shapes_are_checked():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 181, generator=gen)
    w = torch.randn(32, 64, 3, generator=gen) / 8
    exact = F.conv1d(x.double(), w.double(), padding=4, dilation=4)
    got = winograd_conv1d(x.transpose(1, 2), winograd_weight(w), 4).transpose(1, 2).double()
    assert float((got - exact).norm() / exact.norm()) < 1e-5
    with pytest.raises(ValueError, match="out, in, 3"):
        winograd_weight(torch.zeros(4, 4, 5))
    with pytest.raises(ValueError, match="does not match input channels"):
        winograd_conv1d(x.transpose(1, 2), winograd_weight(torch.zeros(4, 3, 3)), 1)


def _trained_looking_brain(seed: int, latent_shape: tuple[int, ...] = (8,), **overrides) -> BrainModule:
    """A random brain module whose batch norms have non-trivial running statistics (evaluation mode)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"spatial_channels": 12, "fourier_freqs": 3, "hidden": 16, "out_channels": 24, "token_rank": 2}
    cfg = brain_config(**(sizes | overrides))
    torch.manual_seed(seed)
    brain = BrainModule(cfg, torch.rand(10, 2, generator=gen), 3, 37, latent_shape)
    with torch.no_grad():  # aggregation weights away from their initial values
        if brain.aggregate.mode == "affine":
            brain.aggregate.time_weight.uniform_(-0.1, 0.2, generator=gen)
            brain.aggregate.bias.fill_(0.7)
        elif brain.aggregate.mode == "attention":
            brain.aggregate.score.weight.normal_(generator=gen)
            brain.aggregate.score.bias.fill_(0.5)
    for module in brain.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
            module.weight.data.normal_(generator=gen)
            module.bias.data.normal_(generator=gen)
    return brain.eval()


_ARCHITECTURES = [  # the output stage is the schema default (conv_mlp) unless named
    {"n_blocks": 2},
    {"n_blocks": 3, "hidden": 12},  # first block residual: the front is not folded into a conv
    {"n_blocks": 1, "kernel": 5},  # direct convolution fallback
    {"n_blocks": 2, "batch_norm": False, "subject_layers": False},
    {"n_blocks": 2, "aggregation": "attention"},
    {"n_blocks": 2, "aggregation": "mean"},
    {"n_blocks": 2, "output_stage": "linear"},
    {"n_blocks": 3, "hidden": 12, "output_stage": "linear"},
    {"n_blocks": 2, "aggregation": "attention", "output_stage": "linear"},
    {"n_blocks": 2, "aggregation": "mean", "output_stage": "linear"},
]


@pytest.mark.parametrize("overrides", _ARCHITECTURES)
@pytest.mark.parametrize("winograd", [True, False])
def test_realtime_decoder_matches_brain_module(overrides, winograd):
    brain = _trained_looking_brain(1, **overrides)
    _assert_same_outputs(brain, winograd)


def test_realtime_decoder_with_token_latents():
    _assert_same_outputs(_trained_looking_brain(5, latent_shape=(3, 4), n_blocks=1), winograd=None)


@pytest.mark.parametrize("overrides", _ARCHITECTURES)
def test_streaming_decoder_matches_brain_module_for_any_chunking(overrides):
    brain = _trained_looking_brain(8, **overrides)
    x = torch.randn(2, 10, 37, generator=torch.Generator().manual_seed(9))
    mask = torch.ones(10, dtype=torch.bool)
    mask[[0, 4]] = False
    with torch.no_grad():
        expected = brain(x, torch.full((2,), 2), mask)
    decoder = StreamingDecoder(brain, subject=2, mask=mask)
    # two windows back to back: stale samples of the first would show in the second
    for chunks in ([1] * 37, [12, 12, 12, 1], [37], [5, 1, 20, 11]):
        for trial in range(2):
            bounds = np.cumsum([0, *chunks])
            outs = [decoder.push(x[trial, :, a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            assert all(out is None for out in outs[:-1])
            want = {head: expected[head][trial : trial + 1] for head in ("clip", "mse")}
            assert _rel_diff(outs[-1], want) <= 1e-5


def test_streaming_decoder_with_token_latents():
    brain = _trained_looking_brain(12, latent_shape=(3, 4), n_blocks=1)
    x = torch.randn(1, 10, 37)
    stream = StreamingDecoder(brain, subject=1)
    out = [stream.push(part) for part in x.split(10, dim=-1)][-1]
    with torch.no_grad():
        expected = brain(x, torch.ones(1))
    for head in ("clip", "mse"):
        assert out[head].shape == (1, 12)
        torch.testing.assert_close(out[head], expected[head], rtol=1e-4, atol=1e-5)


def test_streaming_decoder_leaves_only_the_receptive_field_tail_for_the_last_sample():
    brain = _trained_looking_brain(10, n_blocks=2)
    with torch.inference_mode():  # pushed outside inference mode below
        decoder = StreamingDecoder(brain)
    x = torch.randn(1, 10, 37)
    assert decoder.push(x[..., :36]) is None
    lag = 0
    for stage, done in zip(decoder.stages, decoder.done[1:], strict=True):
        lag += stage.half  # each stage waits for its half receptive field
        assert done == 36 - lag
    assert lag == 1 + 2 + 1 + 4 + 8 + 1  # dilations 1, 2 and 4, 8, kernel-3 GLU convs
    assert decoder.push(x[..., 36:]) is not None
    decoder.push(x[..., :30])
    decoder.reset()  # drops the half window
    out = decoder.push(x[0])
    torch.testing.assert_close(out["clip"], brain(x, torch.zeros(1))["clip"], rtol=1e-4, atol=1e-5)


def test_streaming_decoder_names_bad_chunks():
    decoder = StreamingDecoder(_trained_looking_brain(11, n_blocks=1))
    with pytest.raises(ValueError, match="10 sensors, got \\(9, 4\\)"):
        decoder.push(torch.zeros(9, 4))
    decoder.push(torch.zeros(10, 30))
    with pytest.raises(ValueError, match="has 7 left"):
        decoder.push(torch.zeros(1, 10, 8))


def _assert_same_outputs(brain: BrainModule, winograd: bool | None) -> None:
    x = torch.randn(4, 10, 37, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(10, dtype=torch.bool)
    mask[[3, 8]] = False
    for subject, channel_mask in [(1, None), (2, mask)]:
        with torch.no_grad():
            expected = brain(x, torch.full((4,), subject), channel_mask)
            got = RealtimeDecoder(brain, subject, channel_mask, winograd=winograd)(x)
        assert _rel_diff(got, expected) <= 1e-5


def _rel_diff(out: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """Largest relative L2 deviation of the two heads (row by row) from the brain module's outputs."""
    rel = [(out[k] - reference[k]).norm(dim=-1) / reference[k].norm(dim=-1) for k in ("clip", "mse")]
    return float(torch.stack(rel).max())


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_realtime_decoder_gives_the_same_outputs():
    brain = _trained_looking_brain(6, n_blocks=2)
    decoder = RealtimeDecoder(brain, subject=1)
    x = torch.randn(1, 10, 37, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        expected, got = decoder(x), decoder.compiled()(x)
    for head in ("clip", "mse"):
        torch.testing.assert_close(got[head], expected[head], rtol=1e-4, atol=1e-5)


def test_realtime_decoder_is_a_frozen_snapshot():
    brain = _trained_looking_brain(3, n_blocks=1)
    decoder = RealtimeDecoder(brain, subject=0)
    x = torch.randn(2, 10, 37)
    with torch.no_grad():
        before = decoder(x)["clip"].clone()
        for p in brain.parameters():
            p.add_(0.5)
        assert torch.equal(decoder(x)["clip"], before)
    assert not any(p.requires_grad for p in decoder.parameters())
    with torch.no_grad():  # moving the decoder rebuilds its cached edge-bias maps
        decoder(x)
        torch.testing.assert_close(
            decoder.double()(x.double())["clip"], before.double(), rtol=1e-4, atol=1e-5
        )
    assert not decoder.training
    with pytest.raises(IndexError, match="out of range"):
        RealtimeDecoder(brain, subject=3)


def test_realtime_decoder_edges_respect_zero_padding():
    """The folded front's bias must vanish where the first conv reads padding: check edge samples."""
    brain = _trained_looking_brain(4, n_blocks=1)
    with torch.no_grad():
        brain.mix.bias.fill_(3.0)  # a large constant makes a wrong edge obvious
        x = torch.randn(1, 10, 37)
        h_brain = brain.encoder[0].conv1(brain.subject(brain.mix(brain.spatial(x)), torch.zeros(1)))
        decoder = RealtimeDecoder(brain, subject=0)
        conv1 = decoder.blocks[0].conv1
        h_fast = conv1(x.transpose(1, 2)).transpose(1, 2)
        norm = brain.encoder[0].norm1
        expected = F.batch_norm(
            h_brain, norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=norm.eps
        )
    torch.testing.assert_close(h_fast, expected, rtol=1e-4, atol=1e-4)


def test_load_trained_brain_names_a_bad_file(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="model.safetensors"):
        load_trained_brain(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_trained_brain(tmp_path / "absent.safetensors")


@pytest.mark.slow
def test_realtime_decoder_reproduces_the_workflow_predictions(tiny_results):
    """Trial by trial, the frozen and the streaming decoders of a trained model give the predictions
    its job saved (streamed in chunks of 12 samples)."""
    model_dir = sorted((tiny_results / "models" / "brain").glob("*/sub-*/seed-*"))[0]
    trained = load_trained_brain(model_dir / "model.safetensors")
    subject = trained.subjects[0]
    data = load_subject(tiny_results / "preprocessed" / f"sub-{subject}")
    decoder = RealtimeDecoder(trained.brain, trained.subject_index(subject))
    saved = io.load_npz(model_dir / "predictions.npz")
    rows = np.flatnonzero(data.trials["split"].to_numpy(str) == "test_small")
    assert len(rows) and np.array_equal(
        data.trials["image_id"].to_numpy(str)[rows], saved["test_small_image_id"]
    )
    stream = StreamingDecoder(trained.brain, trained.subject_index(subject))
    trials = [torch.from_numpy(np.array(data.meg[r : r + 1], np.float32)) for r in rows]
    with torch.inference_mode():
        whole = [decoder(trial) for trial in trials]
        streamed = [[stream.push(part) for part in trial.split(12, dim=-1)][-1] for trial in trials]
    for outs in (whole, streamed):
        for head, key in (("mse", "test_small_pred"), ("clip", "test_small_pred_clip")):
            got = torch.cat([o[head] for o in outs]).numpy()
            np.testing.assert_allclose(got, saved[key], rtol=1e-4, atol=1e-5)


def test_saved_brain_model_bytes_are_the_same_in_every_process(tmp_path):
    """The same weights and metadata give the same file, whichever process writes it."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from megdecode.artifacts.brain_model import save_trained_brain\n"
        "state = {'brain.w': torch.arange(6.0).reshape(2, 3), 'log_scale': torch.tensor(2.0)}\n"
        "save_trained_brain(sys.argv[1], state, {'hidden': 8, 'n_blocks': 1}, {'lr': 0.1}, 3, ['01'], [4])\n"
    )
    for name in ("a", "b", "c"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{name}.safetensors")], check=True)
    first = (tmp_path / "a.safetensors").read_bytes()
    assert all((tmp_path / f"{n}.safetensors").read_bytes() == first for n in "bc")
    from megdecode.artifacts.brain_model import read_state

    meta, state = read_state(tmp_path / "a.safetensors")
    assert meta["subjects"] == '["01"]' and meta["seed"] == "3" and set(state) == {"brain.w", "log_scale"}
