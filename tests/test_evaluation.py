"""Retrieval evaluation and time-resolved decoding on small hand-made fixtures."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from megdecode.artifacts.evaluation_tables import RETRIEVAL_COLUMNS, TIMERESOLVED_COLUMNS
from megdecode.artifacts.latents import backbone_label, read_latents
from megdecode.artifacts.predictions import read_predictions, standardise
from megdecode.artifacts.splits import TEST_SPLITS, LeakageError, check_no_leakage
from megdecode.artifacts.windows import LISTED, Window, listed_windows, window_samples
from megdecode.config import section_defaults
from megdecode.evaluation import retrieval as ev
from megdecode.evaluation import timeresolved as tr
from megdecode.io import load_npy, read_tsv, save_npy, save_npz, write_json, write_tsv
from megdecode.seeds import derive_rng

EVAL_DEFAULTS = section_defaults("evaluation")


def settings(**changes) -> ev.RetrievalSettings:
    return ev.RetrievalSettings.from_config({**EVAL_DEFAULTS, **changes})


def eval_cfg(timeresolved=None, **top) -> dict:
    """A validated-like ``evaluation`` slice: schema defaults with ``top`` and ``timeresolved`` changes."""
    return {**EVAL_DEFAULTS, **top, "timeresolved": {**EVAL_DEFAULTS["timeresolved"], **(timeresolved or {})}}


N_IMAGES, DIM = 60, 8
IDS = np.array([f"img{i:03d}" for i in range(N_IMAGES)])
SMALL, LARGE = IDS[40:50], IDS[50:60]


class StubRidge:
    """Closed-form ridge, alpha picked on validation: the fit_ridge contract of TRAIN."""

    def __init__(self, X, Y, alphas, X_val=None, Y_val=None):
        self.mx = X.mean(0)
        Xc = X - self.mx
        best = None
        for alpha in alphas:
            W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ Y)
            err = 0.0 if X_val is None else float(((((X_val - self.mx) @ W) - Y_val) ** 2).mean())
            if best is None or err < best[0]:
                best = (err, W)
        self.W = best[1]

    def predict(self, X):
        return (X - self.mx) @ self.W


def make_latents(root: Path, seed: int = 0) -> Path:
    d = root / "latents" / "hog"
    save_npy(
        np.random.default_rng(seed).standard_normal((N_IMAGES, DIM)).astype("float32"), d / "latents.npy"
    )
    write_tsv(pd.DataFrame({"image_id": IDS}), d / "index.tsv")
    write_json({"label": "HOG", "pretrained": True, "shape": [N_IMAGES, DIM]}, d / "latents.json")
    return d


def make_predictions(latent_dir: Path, path: Path, noise: float, seed: int) -> Path:
    lat = read_latents(latent_dir)
    rng = np.random.default_rng(seed)
    mean, std = lat.get(IDS[:40]).mean(0), lat.get(IDS[:40]).std(0)
    arrays = {"target_mean": mean.astype("float32"), "target_std": std.astype("float32")}
    for split, ids in (("val", IDS[:5]), ("test_small", SMALL), ("test_large", LARGE)):
        y = standardise(lat.get(ids), mean, std)
        arrays[f"{split}_pred"] = (y + noise * rng.standard_normal(y.shape)).astype("float32")
        arrays[f"{split}_image_id"] = ids.astype("U")
    save_npz(arrays, path)
    return path


def test_derive_rng_is_stable() -> None:
    a = derive_rng(0, "x", "01").random(3)
    np.testing.assert_array_equal(a, derive_rng(0, "x", "01").random(3))
    assert not np.array_equal(a, derive_rng(0, "x", "02").random(3))


def test_backbone_label_marks_random_features() -> None:
    assert (
        backbone_label({"label": "DINOv2 tiny", "pretrained": False}, "x") == "DINOv2 tiny (random features)"
    )
    assert backbone_label({"pretrained": True}, "hog") == "hog"


def test_missing_latent_names_file(tmp_path: Path) -> None:
    lat = read_latents(make_latents(tmp_path))
    with pytest.raises(KeyError, match="latents/hog"):
        lat.get(["nope"])


def test_evaluate_all_good_vs_chance(tmp_path: Path) -> None:
    lat_dir = make_latents(tmp_path)
    brain = [str(make_predictions(lat_dir, tmp_path / f"b{s}.npz", 0.3, s)) for s in (0, 1)]
    files = {
        "brain": brain,
        "ridge": [str(make_predictions(lat_dir, tmp_path / "r.npz", 3.0, 5))],
        "chance": brain,
    }
    outs = {m: {"01": str(tmp_path / "eval" / m / "sub-01.tsv")} for m in ("brain", "ridge", "chance")}
    jobs = [
        dict(model=m, backbone="hog", latent_dir=lat_dir, prediction_files={"01": files[m]}, outputs=outs[m])
        for m in outs
    ]
    cfg = {**EVAL_DEFAULTS, "n_bootstrap": 200}
    ev.evaluate_all(jobs, cfg, seed=0)
    tables = {m: read_tsv(outs[m]["01"], dtype={"subject": str}) for m in outs}
    brain = tables["brain"].set_index(["test_set", "metric"])
    assert list(tables["brain"].columns) == RETRIEVAL_COLUMNS
    assert set(tables["brain"]["window"]) == {"full"}
    assert brain.loc[("test_small", "top1_acc"), "value"] > 0.9
    assert brain.loc[("test_small", "top5_acc"), "chance"] == pytest.approx(0.5)
    assert brain.loc[("test_small", "median_rank"), "value"] == pytest.approx(0.1)
    ok = tables["brain"]
    assert ((ok.ci_low <= ok.value + 1e-12) & (ok.value <= ok.ci_high + 1e-12)).all()
    # validation is scored too (model selection reads it), after the test sets: their CIs do not depend on it
    assert list(dict.fromkeys(tables["brain"]["test_set"])) == ["test_small", "test_large", "val"]
    assert brain.loc[("val", "top5_acc"), "chance"] == pytest.approx(1.0)  # a 5-image validation gallery
    lat = read_latents(lat_dir)
    preds = [read_predictions(f) for f in files["brain"]]
    tests_only = ev.evaluate_predictions(
        preds, lat, settings(n_bootstrap=200), derive_rng(0, "retrieval", "brain", "hog", "01", "mse"),
        sets=("test_small", "test_large"),
    )  # fmt: skip
    for row in tests_only:
        assert brain.loc[(row["test_set"], row["metric"]), "ci_low"] == pytest.approx(row["ci_low"])
    # same inputs, same seed -> identical numbers
    ev.evaluate_all(jobs, cfg, seed=0)
    pd.testing.assert_frame_equal(tables["chance"], read_tsv(outs["chance"]["01"], dtype={"subject": str}))


def test_chance_model_is_at_chance(tmp_path: Path) -> None:
    """Shuffled-label control: many shuffles of a perfect decoder average to chance."""
    lat = read_latents(make_latents(tmp_path))
    pred = read_predictions(make_predictions(tmp_path / "latents" / "hog", tmp_path / "p.npz", 0.0, 0))
    few = settings(n_bootstrap=0, chance_shuffles=10)
    top1, rank = [], []
    for seed in range(20):
        rows = ev.evaluate_predictions([pred], lat, few, np.random.default_rng(seed), shuffle=True)
        r = {(x["test_set"], x["metric"]): x for x in rows}
        top1.append(r[("test_large", "top1_acc")]["value"])
        rank.append(r[("test_large", "median_rank")]["value"])
    assert np.mean(top1) == pytest.approx(0.1, abs=0.02)  # chance 1/10
    assert np.mean(rank) == pytest.approx(0.55, abs=0.05)  # chance 11/20
    unshuffled = ev.evaluate_predictions([pred], lat, few, np.random.default_rng(0))
    assert {(x["test_set"], x["metric"]): x["value"] for x in unshuffled}[("test_large", "top1_acc")] == 1.0


def test_inconsistent_seeds_rejected(tmp_path: Path) -> None:
    lat_dir = make_latents(tmp_path)
    lat = read_latents(lat_dir)
    a = read_predictions(make_predictions(lat_dir, tmp_path / "a.npz", 0.1, 0))
    b = dataclasses.replace(a, image_ids={**a.image_ids, "test_small": a.image_ids["test_small"][::-1]})
    with pytest.raises(ValueError, match="item order"):
        ev.evaluate_predictions([a, b], lat, settings(n_bootstrap=10), np.random.default_rng(0))


def test_windows() -> None:
    w = tr.sliding_windows(-0.2, 0.4, 0.1, 0.05)
    assert len(w) == 11 and w[0] == Window("sliding", -0.2, -0.1) and w[-1].tmax == pytest.approx(0.4)
    g = tr.growing_windows(0.0, 0.35, 0.1)
    assert [x.tmax for x in g] == [0.1, 0.2, 0.3] and all(x.tmin == 0.0 for x in g)
    times = -0.2 + np.arange(60) / 100
    idx = window_samples(times, Window("sliding", 0.0, 0.1))
    np.testing.assert_allclose(times[idx], np.arange(10) / 100, atol=1e-9)
    with pytest.raises(ValueError, match="no sample"):
        window_samples(times, Window("sliding", 2.0, 2.1))
    with pytest.raises(ValueError):
        tr.sliding_windows(0, 1, 0, 0.1)


def make_meg_study(root: Path, latency: float, seed: int = 0) -> tuple[Path, Path]:
    """Epochs whose channels carry the image latent only around ``latency`` (Gaussian, 20 ms wide)."""
    rng = np.random.default_rng(seed)
    lat_dir = make_latents(root)
    lat = read_latents(lat_dir)
    rows = [("train", IDS[i % 40]) for i in range(240)] + [("val", IDS[i]) for i in range(0, 40, 2)]
    rows += [("test_small", x) for x in SMALL] + [("test_large", x) for x in LARGE]
    trials = pd.DataFrame(rows, columns=["split", "image_id"])
    sfreq, tmin, n_times, n_ch = 100.0, -0.2, 70, 12
    times = tmin + np.arange(n_times) / sfreq
    mixing = rng.standard_normal((DIM, n_ch))
    envelope = np.exp(-0.5 * ((times - latency) / 0.02) ** 2)
    signal = (lat.get(trials["image_id"]) @ mixing)[:, :, None] * envelope
    meg = (signal + 1.0 * rng.standard_normal(signal.shape)).astype("float32")
    d = root / "preprocessed" / "sub-01"
    save_npy(meg, d / "meg.npy")
    write_tsv(trials.assign(subject="01", concept=trials["image_id"]), d / "trials.tsv")
    write_tsv(
        pd.DataFrame({"name": [f"MEG{i:02d}" for i in range(n_ch)], "x": 0.5, "y": 0.5}), d / "channels.tsv"
    )
    write_json({"sfreq": sfreq, "tmin": tmin, "n_times": n_times}, d / "info.json")
    return d, lat_dir


@pytest.mark.parametrize("latency", [0.1, 0.3])
def test_timeresolved_peaks_at_encoding_latency(tmp_path: Path, latency: float) -> None:
    pre, lat_dir = make_meg_study(tmp_path, latency)
    cfg = eval_cfg(
        {
            "sliding": {"length": 0.05, "step": 0.05},
            "growing": {"start": 0.0, "step": 0.1},
            "alphas": [1.0, 100.0, 1e4],
            "n_bootstrap": 50,
        }
    )
    out = tmp_path / "tr.tsv"
    df = tr.timeresolved_subject(pre, {"hog": lat_dir}, {"hog": out}, "01", cfg, seed=0, fit_fn=StubRidge)[
        "hog"
    ]
    assert list(read_tsv(out).columns) == TIMERESOLVED_COLUMNS
    curve = df.query("window_kind == 'sliding' and test_set == 'test_large' and metric == 'median_rank'")
    centers = (curve.tmin + curve.tmax) / 2
    peak = float(centers.iloc[int(np.argmin(curve.value.to_numpy()))])
    assert abs(peak - latency) <= 0.05
    baseline = curve[curve.tmax <= 0.0].value
    assert baseline.min() > 0.25  # pre-stimulus windows decode nothing (chance 0.55)
    growing = df.query("window_kind == 'growing' and test_set == 'test_small' and metric == 'top5_acc'")
    assert growing.value.iloc[-1] >= 0.9  # any window that contains the latency decodes
    assert (df.query("metric == 'top5_acc'").chance == 0.5).all()


def test_timeresolved_rejects_mismatched_trials(tmp_path: Path) -> None:
    pre, lat_dir = make_meg_study(tmp_path, 0.1)
    trials = read_tsv(pre / "trials.tsv").iloc[:-1]
    meg = load_npy(pre / "meg.npy")
    with pytest.raises(ValueError, match="trials table"):
        tr.timeresolved_retrieval(
            meg,
            trials,
            np.arange(meg.shape[-1]) / 100,
            read_latents(lat_dir),
            tr.TimeResolvedSettings.from_config(EVAL_DEFAULTS),
            np.random.default_rng(0),
            StubRidge,
        )


def test_leakage_is_refused() -> None:
    ok = pd.DataFrame({"split": ["train", "test_small"], "image_id": ["a", "b"], "concept": ["x", "y"]})
    check_no_leakage(ok)
    with pytest.raises(LeakageError, match=r"test images \['a'\]"):
        check_no_leakage(ok.assign(image_id=["a", "a"]))
    with pytest.raises(LeakageError, match=r"concepts \['x'\]"):
        check_no_leakage(ok.assign(concept=["x", "x"]))
    check_no_leakage(ok.drop(columns="concept"))  # the concept check only where the column exists


def test_timeresolved_adds_brain_window_rows(tmp_path: Path) -> None:
    """A listed-window brain module's predictions join the time-resolved table, labelled with the window."""
    pre, lat_dir = make_meg_study(tmp_path, 0.1)
    trials = read_tsv(pre / "trials.tsv", dtype={"image_id": str})
    lat = read_latents(lat_dir)
    arrays = {"target_mean": np.zeros(lat.values.shape[1]), "target_std": np.ones(lat.values.shape[1])}
    for split in ("val", *TEST_SPLITS):
        ids = trials.loc[trials.split == split, "image_id"].to_numpy(str)
        arrays[f"{split}_pred"], arrays[f"{split}_image_id"] = lat.get(ids).astype("float32"), ids
    save_npz(arrays, tmp_path / "bw.npz")
    windows = {
        "sliding": {"length": 0.1, "step": 0.1},
        "growing": {"start": 0.0, "step": 0.5},
        "alphas": [1.0],
    }
    cfg = eval_cfg({**windows, "brain_windows": [[0.0, 0.25]], "n_bootstrap": 10}, topk=[5])
    (window,) = listed_windows(cfg["timeresolved"]["brain_windows"])
    files = {"hog": {window.name: tmp_path / "bw.npz"}}
    out = tmp_path / "tr.tsv"
    df = tr.timeresolved_subject(
        pre, {"hog": lat_dir}, {"hog": out}, "01", cfg, seed=0, fit_fn=StubRidge, brain_window_files=files
    )["hog"]
    brain = df[df.model == "brain"]
    assert set(brain.window) == {"listed_+0_+250ms"} and set(brain.window_kind) == {LISTED}
    assert (brain.tmin == 0.0).all() and (brain.tmax == 0.25).all()
    assert set(brain.test_set) == set(TEST_SPLITS)
    assert (brain.query("metric == 'top5_acc'").value == 1.0).all()  # perfect predictions
    assert (df[df.model == "ridge"].window_kind != LISTED).all()
    assert len(read_tsv(out)) == len(df)


def test_brain_module_is_scored_on_its_clip_head(tmp_path: Path) -> None:
    """Clip head perfect, MSE head noise: retrieval, Table 1 and the chance model must use the clip head."""
    from megdecode.artifacts.evaluation_tables import scored_head_rows
    from megdecode.reporting.common import ReportSettings
    from megdecode.reporting.tables import collect_results, table1

    lat_dir = make_latents(tmp_path)
    path = make_predictions(lat_dir, tmp_path / "b.npz", noise=0.0, seed=0)
    arrays = dict(np.load(path))
    rng = np.random.default_rng(1)
    for split in ("val", "test_small", "test_large"):
        arrays[f"{split}_pred_clip"] = arrays[f"{split}_pred"]  # perfect
        arrays[f"{split}_pred"] = rng.standard_normal(arrays[f"{split}_pred"].shape).astype("float32")
    save_npz(arrays, path)
    outs = {m: str(tmp_path / m / "sub-01.tsv") for m in ("brain", "chance")}
    jobs = [
        dict(
            model=m,
            backbone="hog",
            latent_dir=lat_dir,
            prediction_files={"01": [str(path)]},
            outputs={"01": o},
        )
        for m, o in outs.items()
    ]
    ev.evaluate_all(jobs, {**EVAL_DEFAULTS, "n_bootstrap": 20, "chance_shuffles": 5}, seed=0)
    brain = read_tsv(outs["brain"], dtype={"subject": str}).set_index(["head", "test_set", "metric"])
    assert brain.loc[("clip", "test_large", "top1_acc"), "value"] == 1.0
    assert brain.loc[("mse", "test_large", "top1_acc"), "value"] < 0.5
    assert set(read_tsv(outs["chance"])["head"]) == {"clip"}  # the chance model shuffles the scored head
    long = collect_results([outs["brain"]], [])
    assert set(scored_head_rows(long)["head"]) == {"clip"}
    t1 = table1(long, ReportSettings.from_config(section_defaults("report")))
    top5 = t1.query("model == 'brain' and metric == 'top5_acc' and test_set == 'test_large'")
    assert float(top5["mean"].iloc[0]) == 1.0


def test_non_finite_predictions_name_the_file(tmp_path: Path) -> None:
    """NaN predictions used to be ranked first (top-5 1.0); reading them is an error naming the file."""
    from megdecode.artifacts.predictions import MSE, read_predictions, write_predictions

    ids = {s: np.array([f"img{i}" for i in range(4)]) for s in ("val", "test_small", "test_large")}
    preds = {s: np.ones((4, 3), np.float32) for s in ids}
    preds["test_large"][2, 1] = np.nan
    path = tmp_path / "predictions.npz"
    write_predictions(path, ids, {MSE: preds}, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError) as err:
        read_predictions(path)
    msg = str(err.value)
    assert f"{path}: test_large_pred holds NaN or infinite values for 1 of 4 trial(s) (first: 'img2')" in msg
    assert f"delete {path} and run the same snakemake command again" in msg


def test_timeresolved_names_the_meg_file_with_non_finite_trials(tmp_path: Path) -> None:
    pre, lat_dir = make_meg_study(tmp_path, 0.1)
    meg = load_npy(pre / "meg.npy").copy()
    meg[0, 1, 2] = np.nan
    np.save(pre / "meg.npy", meg)
    cfg = eval_cfg({"sliding": {"length": 0.05, "step": 0.05}, "alphas": [1.0, 100.0], "n_bootstrap": 5})
    with pytest.raises(ValueError, match=rf"{re.escape(str(pre / 'meg.npy'))}.*X_train contain 1 NaN"):
        tr.timeresolved_subject(pre, {"hog": lat_dir}, {"hog": tmp_path / "tr.tsv"}, "01", cfg, seed=0)
    assert not (tmp_path / "tr.tsv").exists()
