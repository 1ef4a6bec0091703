"""Linear baseline: ridge regression from the flattened, standardised MEG window to the latent.

Tractability at THINGS size (~20k trials x 271 channels x 181 samples = 49k features): the window
is first averaged in bins of ``time_bin`` samples (default 10 at 120 Hz, ~83 ms: 271 x 19 = 5.1k
features), then ridge is solved exactly on the Gram matrix, in primal form (``X^T X``, features x
features) when there are fewer features than trials and in dual form (``X X^T``) otherwise: one
eigendecomposition for every alpha when the Gram matrix is small (or for GCV), one Cholesky
factorisation per alpha when it is large (BLAS-3, several times faster than LAPACK's
eigendecomposition on few cores). Targets are processed in chunks (no float64 copy of Y).
Alpha is chosen on the validation trials when given (lowest mean squared error in the
standardised target space), else by generalised cross-validation on the training trials.
Only numpy/scipy are needed (no torch import). The train stage's job is :mod:`megdecode.training.ridge`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from megdecode.metrics.retrieval import check_finite

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 7, 9))


@dataclass
class RidgeModel:
    """A fitted ridge map ``Y = ((X - x_mean) / x_scale) @ coef + intercept``."""

    coef: np.ndarray
    intercept: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    alpha: float
    alphas: np.ndarray
    scores: np.ndarray
    selection: str
    extra: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, features) -> (n, targets) float32."""
        X = _as_2d(X, "X")
        if X.shape[1] != len(self.x_mean):
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {len(self.x_mean)}")
        out = ((X - self.x_mean) / self.x_scale) @ self.coef + self.intercept
        return out.astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "coef": self.coef.astype(np.float32),
            "intercept": self.intercept.astype(np.float32),
            "x_mean": self.x_mean.astype(np.float32),
            "x_scale": self.x_scale.astype(np.float32),
            "alpha": np.asarray(self.alpha),
            "alphas": np.asarray(self.alphas),
            "scores": np.asarray(self.scores),
            "selection": np.asarray(self.selection),
            **{k: np.asarray(v) for k, v in self.extra.items()},
        }


def _as_2d(X: np.ndarray, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be (n, features), got shape {X.shape}")
    return X


def _standardise(X: np.ndarray, eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, np.float64)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < eps] = 1.0
    return (X - mean) / scale, mean, scale


def fit_ridge(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    X_val: np.ndarray | None = None,
    Y_val: np.ndarray | None = None,
    target_chunk: int = 4096,
    solver: str = "auto",
) -> RidgeModel:
    """Ridge over a grid of ``alphas``, features z-scored on ``X_train``.

    X: (n, features) float32; Y: (n, targets); NaN or inf raise. Alpha: lowest validation MSE when
    ``X_val``/``Y_val`` are given, else lowest generalised cross-validation error on the training set.
    ``solver``: ``eigh`` (one eigendecomposition for all alphas), ``cholesky`` (one factorisation per alpha;
    validation selection only) or ``auto`` (cholesky when the Gram matrix exceeds 2048).
    """
    X_train, Y_train = _as_2d(X_train, "X_train"), _as_2d(Y_train, "Y_train")
    for name, values in (("X_train", X_train), ("Y_train", Y_train), ("X_val", X_val), ("Y_val", Y_val)):
        if values is not None:
            check_finite(values, name, "ridge cannot be fitted on them")
    if len(X_train) != len(Y_train) or len(X_train) < 2:
        raise ValueError(f"X_train ({len(X_train)}) and Y_train ({len(Y_train)}) need the same n >= 2")
    alphas = np.asarray(sorted(float(a) for a in alphas))
    if len(alphas) == 0 or (alphas <= 0).any():
        raise ValueError(f"alphas must be positive, got {alphas}")
    Xs, x_mean, x_scale = _standardise(X_train)
    y_mean = np.asarray(Y_train, np.float64).mean(axis=0)
    n, p = Xs.shape
    primal = p <= n
    use_val = X_val is not None and Y_val is not None
    Xv = (np.asarray(_as_2d(X_val, "X_val"), np.float64) - x_mean) / x_scale if use_val else None
    if solver == "auto":
        solver = "cholesky" if use_val and min(n, p) > 2048 else "eigh"
    if solver == "cholesky":
        if not use_val:
            raise ValueError("the cholesky solver needs validation data (GCV needs the eigendecomposition)")
        coef, scores = _fit_cholesky(Xs, Y_train, y_mean, Xv, Y_val, alphas, primal)
    elif solver == "eigh":
        coef, scores = _fit_eigh(Xs, Y_train, y_mean, Xv, Y_val, alphas, primal, target_chunk)
    else:
        raise ValueError(f"unknown ridge solver '{solver}' (use auto, eigh or cholesky)")
    selection = "val" if use_val else "gcv"
    best = int(np.argmin(scores))
    log.info(
        "ridge (%s form, %s, n=%d, p=%d): %s scores %s -> alpha %g",
        "primal" if primal else "dual",
        solver,
        n,
        p,
        selection,
        np.round(scores, 4).tolist(),
        alphas[best],
    )
    if best in (0, len(alphas) - 1) and len(alphas) > 1:
        log.warning("best alpha %g is at the edge of the grid; consider widening ridge.alphas", alphas[best])
    return RidgeModel(coef(best), y_mean, x_mean, x_scale, float(alphas[best]), alphas, scores, selection)


def _fit_eigh(
    Xs: np.ndarray,
    Y_train: np.ndarray,
    y_mean: np.ndarray,
    Xv: np.ndarray | None,
    Y_val: np.ndarray | None,
    alphas: np.ndarray,
    primal: bool,
    target_chunk: int,
) -> tuple[Callable[[int], np.ndarray], np.ndarray]:
    """Every alpha from one eigendecomposition of the Gram matrix; val MSE or GCV scores."""
    n, p = Xs.shape
    gram = Xs.T @ Xs if primal else Xs @ Xs.T
    evals, evecs = np.linalg.eigh(gram)
    evals = np.clip(evals, 0.0, None)
    del gram
    # primal: coef = V diag(1/(s+a)) V^T X^T Y; dual: coef = X^T U diag(1/(s+a)) U^T Y.
    # Targets are processed in chunks so that no float64 copy of Y (or of the coefficients) is needed.
    n_targets = Y_train.shape[1]
    chunks = [slice(i, min(i + target_chunk, n_targets)) for i in range(0, n_targets, target_chunk)]

    def projection(sl: slice) -> np.ndarray:
        Yc = np.asarray(Y_train[:, sl], np.float64) - y_mean[sl]
        return evecs.T @ (Xs.T @ Yc) if primal else evecs.T @ Yc  # (k, chunk)

    if Xv is not None:
        Xv_basis = Xv @ evecs if primal else (Xv @ Xs.T) @ evecs  # validation predictions = Xv_basis @ scaled
        sq_err = np.zeros(len(alphas))
    else:
        z2 = np.zeros(len(evals))
        total = 0.0
    for sl in chunks:
        proj = projection(sl)
        if Xv is not None:
            Yv = np.asarray(Y_val[:, sl], np.float64) - y_mean[sl]
            for i, a in enumerate(alphas):
                sq_err[i] += float(np.sum((Xv_basis @ (proj / (evals + a)[:, None]) - Yv) ** 2))
        else:
            z2 += (proj**2).sum(axis=1)
            total += float(np.sum((np.asarray(Y_train[:, sl], np.float64) - y_mean[sl]) ** 2))
    if Xv is not None:
        scores = sq_err / (len(Xv) * n_targets)
    else:
        scores = _gcv_scores(evals, z2, total, n, n_targets, alphas, primal)

    def coef(best: int) -> np.ndarray:
        out = np.empty((p, n_targets), np.float32)
        for sl in chunks:
            scaled = projection(sl) / (evals + alphas[best])[:, None]
            out[:, sl] = evecs @ scaled if primal else Xs.T @ (evecs @ scaled)
        return out

    return coef, scores


def _fit_cholesky(
    Xs: np.ndarray,
    Y_train: np.ndarray,
    y_mean: np.ndarray,
    Xv: np.ndarray,
    Y_val: np.ndarray,
    alphas: np.ndarray,
    primal: bool,
) -> tuple[Callable[[int], np.ndarray], np.ndarray]:
    """One Cholesky solve per alpha (BLAS-3: faster than an eigendecomposition for large Gram matrices)."""
    from scipy.linalg import cho_factor, cho_solve

    gram = Xs.T @ Xs if primal else Xs @ Xs.T
    Yc = np.asarray(Y_train, np.float64) - y_mean
    rhs = Xs.T @ Yc if primal else Yc
    del Yc
    Xv_map = Xv if primal else Xv @ Xs.T
    Yv = np.asarray(Y_val, np.float64) - y_mean
    diag = np.arange(len(gram))
    scores, best_sol, best_err = [], None, np.inf
    for a in alphas:
        g = gram.copy()
        g[diag, diag] += a
        sol = cho_solve(
            cho_factor(g, lower=True, overwrite_a=True, check_finite=False), rhs, check_finite=False
        )
        err = float(np.mean((Xv_map @ sol - Yv) ** 2))
        scores.append(err)
        if err < best_err:
            best_err, best_sol = err, sol.astype(np.float32)
    scores = np.asarray(scores)

    def coef(best: int) -> np.ndarray:
        return best_sol if primal else (Xs.T @ best_sol).astype(np.float32)

    return coef, scores


def _gcv_scores(
    evals: np.ndarray, z2: np.ndarray, total: float, n: int, n_targets: int, alphas: np.ndarray, primal: bool
) -> np.ndarray:
    """GCV error ``n * RSS / (n - trace(H))^2`` per alpha, from the eigendecomposition only.

    ``z2[i]``: squared norm, summed over targets, of the projection of Y on the i-th eigenvector
    (times the eigenvalue in primal form); ``total``: squared norm of the centred Y.
    """
    if primal:
        z2 = np.divide(z2, evals, out=np.zeros_like(z2), where=evals > 1e-12)
    scores = []
    for a in alphas:
        shrink = evals / (evals + a)
        rss = total - float(np.sum((2 * shrink - shrink**2) * z2))
        trace = float(shrink.sum())
        scores.append(n * max(rss, 0.0) / max(n - trace, 1e-12) ** 2 / n_targets)
    return np.asarray(scores)


# ------------------------------------------------------------------------------------------ features


def bin_time(meg: np.ndarray, rows: np.ndarray, time_bin: int, chunk: int = 512) -> np.ndarray:
    """Average ``meg[rows]`` (trials, channels, times) in bins of ``time_bin`` samples, flattened, float32.

    Reads the memory-mapped array in chunks, so memory stays at the binned size. A last partial bin
    is averaged over the samples it has.
    """
    n_times = meg.shape[2]
    edges = np.arange(0, n_times, max(1, int(time_bin)))
    out = np.empty((len(rows), meg.shape[1] * len(edges)), np.float32)
    rows = np.asarray(rows)
    for i in range(0, len(rows), chunk):
        sel = rows[i : i + chunk]
        order = np.argsort(sel)
        block = np.asarray(meg[sel[order]], np.float32)
        binned = np.add.reduceat(block, edges, axis=2) / np.diff(np.append(edges, n_times))
        out[i + order] = binned.reshape(len(sel), -1)
    return out


def ridge_summary(model: RidgeModel) -> pd.DataFrame:
    """Alpha grid and its selection scores (lower is better), for logs and reports."""
    return pd.DataFrame({"alpha": model.alphas, f"{model.selection}_mse": model.scores})
