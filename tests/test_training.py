"""Training: CLIP loss, overfitting, resume after interruption/kill -9, leakage, beating chance."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import brain_config
from safetensors.numpy import load_file
from train_fixtures import make_latents, make_subject

from megdecode import io
from megdecode.artifacts.brain_model import load_trained_brain
from megdecode.artifacts.predictions import read_predictions
from megdecode.artifacts.preprocessed import read_subject as load_subject
from megdecode.artifacts.splits import LeakageError, check_no_leakage
from megdecode.config import section_defaults
from megdecode.devices import resolve_device
from megdecode.metrics.retrieval import cosine_similarity
from megdecode.metrics.retrieval import top5_acc as top5_of_sim
from megdecode.models.losses import clip_loss, combined_loss
from megdecode.training import brain as training
from megdecode.training.brain import BrainOutputs, train_brain_module
from megdecode.training.config import TrainingConfig
from megdecode.training.data import crop_subject
from megdecode.training.loop import build_model

SMALL = {
    **section_defaults("brain_module"),
    "spatial_channels": 12,
    "fourier_freqs": 3,
    "hidden": 16,
    "n_blocks": 1,
    "out_channels": 16,
}
FAST = {**section_defaults("training"), "max_epochs": 6, "batch_size": 16, "lr": 3e-3, "patience": 3}
FAST["device"] = "cpu"


def top5_acc(pred: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> float:
    return top5_of_sim(cosine_similarity(pred, candidates), target)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("study")
    lat = make_latents(root / "latents", n_images=40, dim=6)
    return {
        "latents": lat,
        "01": make_subject(root / "sub-01", lat, "01", repeats=2),
        "02": make_subject(root / "sub-02", lat, "02", repeats=2, seed=5, drop_channels=(3, 4)),
    }


def _outputs(root: Path, subjects=("01",)) -> BrainOutputs:
    preds = {s: root / f"predictions_sub-{s}.npz" for s in subjects}
    return BrainOutputs(root / "model.safetensors", root / "history.tsv", preds, root / "ckpt" / "last.pt")


def _poisoned_copy(
    src: Path, dst: Path, keep: slice = slice(None)
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Copy subject ``src`` to ``dst`` with NaN in its test rows and in the samples outside ``keep``.

    Returns the MEG array written, the trials table and the mask of test rows.
    """
    dst.mkdir()
    for name in ("trials.tsv", "channels.tsv", "info.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    meg = io.load_npy(src / "meg.npy").copy()
    trials = io.read_tsv(dst / "trials.tsv", dtype={"image_id": str, "concept": str})
    test = trials["split"].str.startswith("test").to_numpy()
    outside = np.ones(meg.shape[2], dtype=bool)
    outside[keep] = False
    meg[:, :, outside] = np.nan
    meg[test] = np.nan
    io.save_npy(meg, dst / "meg.npy")
    return meg, trials, test


def test_clip_loss_hand_computed_3x3():
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
    # cosines: row0 (1, 0, 1/sqrt2), row1 (0, 1, -1/sqrt2), row2 (1/sqrt2, 1/sqrt2, 0); scale 2
    r = math.sqrt(2)
    rows = [
        -2 + math.log(math.exp(2) + 1 + math.exp(r)),
        -2 + math.log(1 + math.exp(2) + math.exp(-r)),
        -0 + math.log(2 * math.exp(r) + 1),
    ]
    assert float(clip_loss(pred, target, 2.0)) == pytest.approx(sum(rows) / 3, abs=1e-6)
    sym = clip_loss(pred, target, 2.0, symmetric=True)
    assert float(sym) != pytest.approx(sum(rows) / 3, abs=1e-3)


def test_top5_acc():
    cands = np.eye(8)
    assert top5_acc(cands, cands, np.arange(8)) == 1.0
    assert top5_acc(-cands, cands, np.arange(8)) == 0.0


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_model_overfits_tiny_batch(one_thread):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 6, 12, generator=gen), torch.randn(16, 5, generator=gen)
    subj = torch.zeros(16, dtype=torch.long)
    cfg = TrainingConfig.from_dict({**FAST, "clip_weight": 0.5})
    model = build_model(
        brain_config(**{**SMALL, "dropout_radius": 0.0}),
        cfg,
        np.random.default_rng(0).random((6, 2)),  # seeded: the global RNG's state depends on earlier tests
        1,
        12,
        (5,),
        0,
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        losses = combined_loss(model(x, subj), y, model.logit_scale, cfg)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    model.eval()
    out = model(x, subj)
    assert float(torch.nn.functional.mse_loss(out["mse"].detach(), y)) < 0.05
    assert top5_acc(out["clip"].detach().numpy(), y.numpy(), np.arange(16)) == 1.0


def test_train_writes_contract_and_beats_chance(tmp_path):
    study = {"latents": make_latents(tmp_path / "latents", n_images=80, dim=6)}
    study["01"] = make_subject(tmp_path / "sub-01", study["latents"], repeats=2, n_test=20)
    out = _outputs(tmp_path)
    cfg = {**FAST, "max_epochs": 25, "patience": 6, "lr": 1e-2}
    hist = train_brain_module({"01": study["01"]}, study["latents"], out, SMALL, cfg, seed=1, threads=1)
    assert np.isfinite(hist[["train_loss", "val_loss"]].to_numpy()).all()
    preds = io.load_npz(out.predictions["01"])
    trials = io.read_tsv(study["01"] / "trials.tsv", dtype={"image_id": str})
    for split in ("val", "test_small", "test_large"):
        ids = trials.loc[trials["split"] == split, "image_id"].to_numpy(str)
        assert preds[f"{split}_pred"].dtype == np.float32 and preds[f"{split}_pred"].shape == (len(ids), 6)
        assert list(preds[f"{split}_image_id"]) == list(ids)
    # standardisation from training images only
    lat = io.load_npy(study["latents"] / "latents.npy")
    train_rows = sorted({int(i[3:]) for i in trials.loc[trials["split"] == "train", "image_id"]})
    assert np.allclose(preds["target_mean"], lat[train_rows].mean(0), atol=1e-5)
    # retrieval among the 20 test images (top-5 chance 25%)
    ids = preds["test_small_image_id"]
    cand = (lat[[int(i[3:]) for i in ids]] - preds["target_mean"]) / preds["target_std"]
    acc = top5_acc(preds["test_small_pred_clip"], cand, np.arange(len(ids)))
    assert acc >= 0.6, acc
    weights = load_file(str(out.model))
    assert any(k.startswith("brain.spatial") for k in weights)
    assert not out.checkpoint.exists()  # removed after success


def test_resume_after_interruption_gives_same_model(study, tmp_path, monkeypatch):
    cfg = {**FAST, "keep_checkpoints": True}
    ref = _outputs(tmp_path / "ref")
    train_brain_module({"01": study["01"]}, study["latents"], ref, SMALL, cfg, seed=3)
    real_save = training.save_checkpoint
    calls = {"n": 0}

    def crash_after_three(path, state):
        real_save(path, state)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")

    cut = _outputs(tmp_path / "cut")
    monkeypatch.setattr(training, "save_checkpoint", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        train_brain_module({"01": study["01"]}, study["latents"], cut, SMALL, cfg, seed=3)
    assert not cut.model.exists() and cut.checkpoint.exists()
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    hist = train_brain_module({"01": study["01"]}, study["latents"], cut, SMALL, cfg, seed=3)
    a, b = load_file(str(ref.model)), load_file(str(cut.model))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert len(hist) == len(io.read_tsv(ref.history))
    # a checkpoint written for another config is ignored (fresh start, different result)
    other = train_brain_module({"01": study["01"]}, study["latents"], cut, SMALL, {**cfg, "lr": 1e-3}, seed=3)
    assert len(other) >= 1 and not np.array_equal(load_file(str(cut.model))["log_scale"], a["log_scale"])


def test_resume_after_kill_9(study, tmp_path):
    """A real subprocess killed with SIGKILL mid-training resumes to the uninterrupted result."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from megdecode.training import brain as training
        from megdecode.training.brain import BrainOutputs, train_brain_module
        root = Path(sys.argv[1]); slow = sys.argv[2] == "slow"
        real = training.save_checkpoint
        def save(path, state):
            real(path, state)
            if slow:
                time.sleep(0.4)
        training.save_checkpoint = save
        out = BrainOutputs(root / "model.safetensors", root / "history.tsv",
                           {{"01": root / "p.npz"}}, root / "ckpt" / "last.pt")
        cfg = {dict(FAST, max_epochs=8, patience=8, keep_checkpoints=True)!r}
        train_brain_module({{"01": Path({str(study["01"])!r})}}, Path({str(study["latents"])!r}), out,
                           {SMALL!r}, cfg, seed=4, threads=1)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(training.__file__).parents[2])}
    run = [sys.executable, "-c", script]
    ref = _outputs(tmp_path / "ref")
    cfg = dict(FAST, max_epochs=8, patience=8, keep_checkpoints=True)
    train_brain_module({"01": study["01"]}, study["latents"], ref, SMALL, cfg, seed=4, threads=1)
    proc = subprocess.Popen([*run, str(tmp_path / "cut"), "slow"], env=env)
    ckpt = tmp_path / "cut" / "ckpt" / "last.pt"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    subprocess.run([*run, str(tmp_path / "cut"), "fast"], check=True, env=env, timeout=120)
    a = load_file(str(ref.model))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_no_test_trial_reaches_training_or_early_stopping(study, tmp_path):
    """Test rows are poisoned with NaN: any use in training or validation would make the losses NaN."""
    sub = tmp_path / "sub-01"
    _, trials, test = _poisoned_copy(study["01"], sub)
    out = _outputs(tmp_path / "m")
    hist = train_brain_module({"01": sub}, study["latents"], out, SMALL, {**FAST, "max_epochs": 3}, seed=0)
    assert np.isfinite(hist.drop(columns=["best"]).to_numpy(float)).all()
    preds = io.load_npz(out.predictions["01"])
    assert np.isfinite(preds["val_pred"]).all() and np.isnan(preds["test_large_pred"]).all()
    fit_ids = set(trials.loc[trials["split"].isin(["train", "val"]), "image_id"])
    assert not fit_ids & set(preds["test_small_image_id"]) and not fit_ids & set(preds["test_large_image_id"])
    # a split table that leaks a test concept into training is refused
    leaky = trials.copy()
    leaky.loc[leaky.index[0], "concept"] = trials.loc[test, "concept"].iloc[0]
    with pytest.raises(LeakageError, match="test images"):
        check_no_leakage(leaky)


def test_crop_trains_on_the_window_only_and_never_on_test_rows(study, tmp_path):
    """Crop to [-0.45, -0.40) s (samples 6..11 at 120 Hz from -0.5 s): NaN outside it and in test rows."""
    sub = tmp_path / "sub-01"
    meg, trials, test = _poisoned_copy(study["01"], sub, keep=slice(6, 12))
    cropped = crop_subject(load_subject(sub, "01"), (-0.45, -0.40))
    assert cropped.meg.shape == (meg.shape[0], meg.shape[1], 6)
    assert np.isfinite(cropped.meg[~test]).all()
    out = _outputs(tmp_path / "m")
    hist = train_brain_module(
        {"01": sub}, study["latents"], out, SMALL, {**FAST, "max_epochs": 3}, seed=0, crop=(-0.45, -0.40)
    )
    assert np.isfinite(hist.drop(columns=["best"]).to_numpy(float)).all()  # no NaN sample or test row used
    preds = io.load_npz(out.predictions["01"])
    for split in ("val", "test_small", "test_large"):
        assert preds[f"{split}_pred"].shape == ((trials["split"] == split).sum(), 6)
    assert np.isfinite(preds["val_pred"]).all() and np.isnan(preds["test_large_pred"]).all()
    with pytest.raises(ValueError, match="holds no sample"):
        crop_subject(load_subject(sub, "01"), (1.0, 1.2))


def test_shared_model_with_missing_channels(study, tmp_path):
    subjects = ("01", "02")
    assert len(load_subject(study["02"]).channels) == len(load_subject(study["01"]).channels) - 2
    out = _outputs(tmp_path, subjects)
    train_brain_module(
        {s: study[s] for s in subjects}, study["latents"], out, SMALL, {**FAST, "max_epochs": 2}, 0
    )
    for s in subjects:
        preds = io.load_npz(out.predictions[s])
        assert np.isfinite(preds["test_large_pred"]).all() and len(preds["test_small_image_id"]) == 10
    assert load_file(str(out.model))["brain.subject.weight"].shape[0] == 2


def test_bad_input_names_the_file(study, tmp_path):
    with pytest.raises(FileNotFoundError, match="meg.npy"):
        load_subject(tmp_path)
    out = _outputs(tmp_path / "m")
    bad_latents = make_latents(tmp_path / "lat", n_images=5, dim=6)
    with pytest.raises(KeyError, match="have no latent"):
        train_brain_module({"01": study["01"]}, bad_latents, out, SMALL, FAST, seed=0)


@pytest.mark.slow
def test_tiny_workflow_brain_learns_and_writes_both_heads(tiny_results):
    """The tiny workflow's brain modules train (validation loss below its first epoch's) and predict every
    test item with both heads, in the contract's order.

    Whether they beat chance on held-out concepts is not asserted here: on the tiny study (2 subjects, ~150
    training trials, one seed) it depends on the seed. Retrained with seeds 1-3 the CLIP head beats chance
    (z -3.2 to -6.7, ties counted as the mean of the tied positions); with the workflow's seed early stopping
    ends training near chance (see the session notes).
    A former version of this test counted tied candidates as beaten, which moves the null below 0.5.
    Learning that generalises is tested on a study with a strong signal
    (test_train_writes_contract_and_beats_chance) and, on the tiny workflow, for the listed-window module.
    """
    model_dirs = sorted((tiny_results / "models" / "brain").glob("*/sub-*/seed-*"))
    assert model_dirs, "no brain module was trained by the tiny workflow"
    for d in model_dirs:
        preds = read_predictions(d / "predictions.npz")
        trials = load_subject(tiny_results / "preprocessed" / d.parents[0].name).trials
        for split in ("test_small", "test_large"):
            ids = trials.loc[trials["split"] == split, "image_id"].to_numpy(str)
            assert list(preds.image_ids[split]) == list(ids)
            for head in ("clip", "mse"):
                assert np.isfinite(preds.pred(split, head)).all() and len(preds.pred(split, head)) == len(ids)
        hist = io.read_tsv(d / "history.tsv")
        assert np.isfinite(hist["val_loss"]).all()
        assert hist["val_loss"].min() < hist["val_loss"].iloc[0], d


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda_when_present(study, tmp_path):
    """device: auto picks CUDA; outputs are finite and written like on CPU."""
    assert resolve_device("auto") == "cuda"
    out = _outputs(tmp_path)
    hist = train_brain_module(
        {"01": study["01"]}, study["latents"], out, SMALL, {**FAST, "device": "auto", "max_epochs": 3}, seed=0
    )
    assert len(hist) == 3 and np.isfinite(hist["val_loss"]).all()
    assert np.isfinite(io.load_npz(out.predictions["01"])["test_large_pred"]).all()


@pytest.mark.slow
def test_tiny_workflow_shared_model_rule(tiny_results, tmp_path):
    """training.shared_model: one job trains on every subject and writes one predictions file per subject."""
    import shutil

    import yaml
    from conftest import REPO, run_snakemake

    from megdecode.models import RealtimeDecoder

    results = tmp_path / "results"
    shutil.copytree(tiny_results, results, symlinks=True)
    cfg = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    cfg["training"]["shared_model"] = True
    configfile = tmp_path / "shared.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    subjects = sorted(p.name.removeprefix("sub-") for p in (results / "preprocessed").glob("sub-*"))
    shared = results / "models" / "brain_shared" / "attributes" / "seed-0"
    proc = run_snakemake(
        results, *(str(shared / f"predictions_sub-{s}.npz") for s in subjects), configfile=configfile
    )
    ran = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.MULTILINE))
    assert ran == {"train_brain_shared"}, ran  # the copied per-subject results are reused
    trained = load_trained_brain(shared / "model.safetensors")
    assert trained.subjects == subjects and trained.brain.subject.n_subjects == len(subjects)
    for s in subjects:
        own = io.load_npz(
            results / "models" / "brain" / "attributes" / f"sub-{s}" / "seed-0" / "predictions.npz"
        )
        pred = io.load_npz(shared / f"predictions_sub-{s}.npz")
        for split in ("val", "test_small", "test_large"):
            np.testing.assert_array_equal(pred[f"{split}_image_id"], own[f"{split}_image_id"])
        # the subject layer of this subject, folded: the frozen decoder reproduces the job's predictions
        data = load_subject(results / "preprocessed" / f"sub-{s}")
        rows = np.flatnonzero(data.trials["split"].to_numpy(str) == "test_small")
        with torch.inference_mode():
            got = RealtimeDecoder(trained.brain, trained.subject_index(s))(
                torch.from_numpy(np.array(data.meg[rows]))
            )
        np.testing.assert_allclose(got["mse"].numpy(), pred["test_small_pred"], rtol=1e-4, atol=1e-5)


def _copy_with_nan_rows(src: Path, dst: Path, split: str) -> Path:
    """Copy subject ``src`` to ``dst`` with NaN in one sample of the first trial of ``split``."""
    dst.mkdir()
    for name in ("trials.tsv", "channels.tsv", "info.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    meg = io.load_npy(src / "meg.npy").copy()
    trials = io.read_tsv(dst / "trials.tsv", dtype={"image_id": str})
    meg[np.flatnonzero(trials["split"] == split)[0], 2, 5] = np.nan
    io.save_npy(meg, dst / "meg.npy")
    return dst


@pytest.mark.parametrize(("split", "phase"), [("train", "training"), ("val", "validation")])
def test_non_finite_loss_stops_training_naming_epoch_learning_rate_and_file(study, tmp_path, split, phase):
    """A NaN input used to give losses 'n/a', val_top5_acc 1.0 and a model written with exit 0."""
    sub = _copy_with_nan_rows(study["01"], tmp_path / "sub-01", split)
    out = _outputs(tmp_path / "m")
    with pytest.raises(FloatingPointError) as err:
        train_brain_module({"01": sub}, study["latents"], out, SMALL, FAST, seed=0)
    msg = str(err.value)
    assert f"epoch 0: the {phase} loss is nan" in msg and "learning rate 0.003" in msg
    assert f"{sub / 'meg.npy'} holds NaN or infinite values in 1 {split} trial(s)" in msg
    assert not out.model.exists() and not out.predictions["01"].exists()


def test_diverging_training_stops_naming_epoch_and_learning_rate(study, tmp_path):
    out = _outputs(tmp_path / "m")
    cfg = {**FAST, "lr": 1e35}
    diverged = r"epoch \d+: the (training|validation) loss is (nan|inf)"
    with pytest.raises(FloatingPointError, match=diverged) as err:
        train_brain_module({"01": study["01"]}, study["latents"], out, SMALL, cfg, seed=0)
    assert "learning rate 1e+35" in str(err.value) and "lower training.lr" in str(err.value)
    assert not out.model.exists()


def test_truncated_model_file_says_delete_it_and_run_again(study, tmp_path):
    """'Rerun the training rule' alone fails again: Snakemake finds the file up to date. Give the command."""
    out = _outputs(tmp_path / "m")
    train_brain_module({"01": study["01"]}, study["latents"], out, SMALL, {**FAST, "max_epochs": 1}, seed=0)
    data = out.model.read_bytes()
    out.model.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        load_trained_brain(out.model)
    msg = str(err.value)
    assert f"cannot read {out.model}" in msg
    assert f"delete {out.model} and run the same snakemake command again" in msg and "--forcerun" in msg


def test_stop_on_top5_keeps_the_epoch_with_the_best_validation_top5(study, tmp_path):
    cfg = {**FAST, "stop_on": "top5", "max_epochs": 5, "patience": 2}
    hist = train_brain_module({"01": study["01"]}, study["latents"], _outputs(tmp_path), SMALL, cfg, seed=3)
    best = hist.loc[hist["best"], "epoch"].max()
    assert hist["val_top5_acc"].idxmax() == best  # the first epoch reaching the highest validation top-5


def test_tracking_both_criteria_leaves_each_one_as_if_alone(study):
    """One run stopping on the loss while tracking top-5 gives, for each criterion, the best epoch and weights
    of a run stopping on that criterion alone (same seed, same batches)."""
    from megdecode.artifacts.latents import read_latents
    from megdecode.artifacts.predictions import TargetScaler
    from megdecode.models import BrainModuleConfig
    from megdecode.training.data import TrialSet, union_channels
    from megdecode.training.loop import TrainingRun, fit_epochs

    subject = load_subject(study["01"])
    latents = read_latents(study["latents"])
    scaler = TargetScaler.fit(latents, subject.trials.loc[subject.trials.split == "train", "image_id"])
    names, positions = union_channels([subject])
    sets = {s: TrialSet([subject], s, names, latents, scaler) for s in ("train", "val")}

    def run(stop_on: str, track: tuple[str, ...]) -> TrainingRun:
        cfg = TrainingConfig.from_dict({**FAST, "stop_on": stop_on, "max_epochs": 8, "patience": 2})
        bcfg = BrainModuleConfig.from_dict(SMALL)
        model = build_model(bcfg, cfg, positions, 1, subject.meg.shape[2], latents.shape, 7)
        state = TrainingRun.start(model, cfg, 7, track=track)
        fit_epochs(model, sets["train"], sets["val"], cfg, torch.device("cpu"), state, progress=False)
        return state

    both = run("loss", ("top5",))
    assert list(both.stoppers) == ["loss", "top5"] and both.stop or len(both.history) == 8
    for criterion in ("loss", "top5"):
        alone = run(criterion, ())
        assert alone.stopper.best_epoch == both.stoppers[criterion].best_epoch
        a, b = alone.best_state, both.best_states[criterion]
        assert all(torch.equal(a[k], b[k]) for k in a)
