"""Ridge baseline: exactness against sklearn, alpha selection, binning, the per-subject job."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from train_fixtures import make_latents, make_subject

from megdecode import io
from megdecode.artifacts.splits import LeakageError
from megdecode.config import section_defaults
from megdecode.ridge import bin_time, fit_ridge
from megdecode.training.ridge import train_ridge


def _data(n: int, p: int, d: int = 3, seed: int = 0, noise: float = 0.5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)).astype(np.float32) * rng.uniform(0.5, 2, p).astype(np.float32) + 1.0
    W = rng.standard_normal((p, d))
    Y = X @ W + noise * rng.standard_normal((n, d))
    return X, Y.astype(np.float32)


@pytest.mark.parametrize(("n", "p"), [(60, 10), (15, 40)])  # primal and dual forms
def test_fit_ridge_matches_sklearn(n, p):
    X, Y = _data(n, p)
    model = fit_ridge(X, Y, alphas=[3.0])
    Xs = (X - X.mean(0)) / X.std(0)
    ref = Ridge(alpha=3.0).fit(Xs, Y)
    assert model.alpha == 3.0
    assert np.allclose(model.coef, ref.coef_.T, atol=1e-4)
    assert np.allclose(model.predict(X[:5]), ref.predict(Xs[:5]), atol=1e-4)
    assert model.predict(X).dtype == np.float32


def test_val_selection_picks_lowest_validation_error():
    X, Y = _data(80, 30, noise=3.0)
    Xv, Yv = _data(40, 30, noise=3.0, seed=1)
    alphas = [0.01, 1.0, 100.0, 1e4]
    model = fit_ridge(X, Y, alphas, Xv, Yv)
    brute = [np.mean((fit_ridge(X, Y, [a]).predict(Xv) - Yv) ** 2) for a in alphas]
    assert model.selection == "val" and model.alpha == alphas[int(np.argmin(brute))]
    assert np.allclose(model.scores, brute, rtol=1e-4)


@pytest.mark.parametrize(("n", "p"), [(50, 8), (12, 30)])
def test_gcv_scores_match_hat_matrix(n, p):
    X, Y = _data(n, p, noise=2.0)
    alphas = [0.1, 10.0, 1000.0]
    model = fit_ridge(X, Y, alphas)
    Xs = (X - X.mean(0)) / X.std(0)
    Yc = Y - Y.mean(0)
    for a, score in zip(alphas, model.scores, strict=True):
        H = Xs @ np.linalg.solve(Xs.T @ Xs + a * np.eye(p), Xs.T)
        gcv = n * np.sum((Yc - H @ Yc) ** 2) / (n - np.trace(H)) ** 2 / Y.shape[1]
        assert score == pytest.approx(gcv, rel=1e-4)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same n"):
        fit_ridge(np.zeros((5, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="positive"):
        fit_ridge(np.zeros((5, 2)), np.zeros((5, 1)), alphas=[0.0])
    with pytest.raises(ValueError, match="features"):
        fit_ridge(*_data(10, 3), alphas=[1.0]).predict(np.zeros((2, 4)))


def test_bin_time_means_and_partial_bin():
    meg = np.arange(2 * 3 * 7, dtype=np.float32).reshape(2, 3, 7)
    out = bin_time(meg, np.array([1, 0]), time_bin=3, chunk=1)
    assert out.shape == (2, 3 * 3)
    expected = np.stack([meg[:, :, 0:3].mean(2), meg[:, :, 3:6].mean(2), meg[:, :, 6:7].mean(2)], axis=2)
    assert np.allclose(out, expected[[1, 0]].reshape(2, -1))
    assert np.allclose(bin_time(meg, np.array([0, 1]), 1), meg.reshape(2, -1))


def test_train_ridge_job(tmp_path):
    lat = make_latents(tmp_path / "lat", n_images=80, dim=6)
    sub = make_subject(tmp_path / "sub-01", lat, repeats=2, n_test=20)
    cfg = {"alphas": [1.0, 100.0, 1e4], "time_bin": 4, "selection": "val"}
    model = train_ridge(sub, lat, tmp_path / "r" / "predictions.npz", tmp_path / "r" / "model.npz", cfg)
    preds = io.load_npz(tmp_path / "r" / "predictions.npz")
    trials = io.read_tsv(sub / "trials.tsv", dtype={"image_id": str})
    for split in ("val", "test_small", "test_large"):
        ids = trials.loc[trials["split"] == split, "image_id"].to_numpy(str)
        assert list(preds[f"{split}_image_id"]) == list(ids)
        assert preds[f"{split}_pred"].shape == (len(ids), 6) and preds[f"{split}_pred"].dtype == np.float32
    saved = io.load_npz(tmp_path / "r" / "model.npz")
    assert float(saved["alpha"]) == model.alpha and int(saved["time_bin"]) == 4
    # top-1 among 20 test images far above chance (5%)
    L = io.load_npy(lat / "latents.npy")
    ids = preds["test_small_image_id"]
    cand = (L[[int(i[3:]) for i in ids]] - preds["target_mean"]) / preds["target_std"]
    pred = preds["test_small_pred"]
    cos = (pred / np.linalg.norm(pred, axis=1, keepdims=True)) @ (
        cand / np.linalg.norm(cand, axis=1, keepdims=True)
    ).T
    assert np.mean(cos.argmax(1) == np.arange(len(ids))) >= 0.5


def test_train_ridge_refuses_leaky_split(tmp_path):
    lat = make_latents(tmp_path / "lat", n_images=30, dim=4)
    sub = make_subject(tmp_path / "sub-01", lat)
    trials = io.read_tsv(sub / "trials.tsv", dtype={"image_id": str, "concept": str})
    trials.loc[0, "image_id"] = trials.loc[trials["split"] == "test_large", "image_id"].iloc[0]
    io.write_tsv(trials, sub / "trials.tsv")
    with pytest.raises(LeakageError):
        train_ridge(sub, lat, tmp_path / "p.npz", tmp_path / "m.npz", section_defaults("ridge"))
    assert not (tmp_path / "p.npz").exists()


def test_target_chunks_give_the_same_model():
    X, Y = _data(40, 12, d=5)
    Xv, Yv = _data(20, 12, d=5, seed=3)
    for val in ((None, None), (Xv, Yv)):
        whole = fit_ridge(X, Y, [0.1, 10.0, 1e3], *val)
        chunked = fit_ridge(X, Y, [0.1, 10.0, 1e3], *val, target_chunk=2)
        assert np.allclose(whole.scores, chunked.scores) and np.allclose(whole.coef, chunked.coef, atol=1e-6)


@pytest.mark.parametrize(("n", "p"), [(60, 10), (15, 40)])
def test_cholesky_and_eigh_solvers_agree(n, p):
    X, Y = _data(n, p, d=4)
    Xv, Yv = _data(20, p, d=4, seed=2)
    a = fit_ridge(X, Y, [0.1, 10.0, 1e3], Xv, Yv, solver="eigh")
    b = fit_ridge(X, Y, [0.1, 10.0, 1e3], Xv, Yv, solver="cholesky")
    assert a.alpha == b.alpha and np.allclose(a.scores, b.scores) and np.allclose(a.coef, b.coef, atol=1e-5)
    with pytest.raises(ValueError, match="validation"):
        fit_ridge(X, Y, [1.0], solver="cholesky")


@pytest.mark.parametrize("name", ["X_train", "Y_train", "X_val", "Y_val"])
def test_fit_ridge_refuses_non_finite_data(name):
    X, Y = _data(40, 6)
    data = {
        "X_train": X[:30].copy(),
        "Y_train": Y[:30].copy(),
        "X_val": X[30:].copy(),
        "Y_val": Y[30:].copy(),
    }
    data[name][3, 1] = np.nan
    with pytest.raises(ValueError, match=rf"{name} contain 1 NaN or infinite value\(s\).*first: row 3"):
        fit_ridge(data["X_train"], data["Y_train"], [1.0, 10.0], data["X_val"], data["Y_val"])


@pytest.mark.parametrize("split", ["train", "test_large"])
def test_train_ridge_job_names_the_file_with_non_finite_trials(tmp_path, split):
    """NaN trials used to give NaN predictions (and 100% top-5 further down), with exit 0."""
    lat = make_latents(tmp_path / "lat", n_images=30, dim=4)
    sub = make_subject(tmp_path / "sub", lat, repeats=2, n_test=6)
    meg = io.load_npy(sub / "meg.npy").copy()
    trials = io.read_tsv(sub / "trials.tsv")
    meg[np.flatnonzero(trials["split"] == split)[[0, 1]], 0, 3] = np.inf
    io.save_npy(meg, sub / "meg.npy")
    out = tmp_path / "r"
    with pytest.raises(ValueError) as err:
        train_ridge(sub, lat, out / "predictions.npz", out / "model.npz", section_defaults("ridge"))
    msg = str(err.value)
    assert f"{sub / 'meg.npy'} holds NaN or infinite values in 2 {split} trial(s)" in msg
    assert "Delete that file and run the same snakemake command again" in msg
    assert not out.exists()
