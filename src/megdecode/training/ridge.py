"""The ridge-baseline job of one (backbone, subject): fit on train, choose alpha on val, predict val and
tests.

The solver is :func:`megdecode.ridge.fit_ridge` on time-binned MEG (:func:`megdecode.ridge.bin_time`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from megdecode import io
from megdecode.artifacts.latents import read_latents
from megdecode.artifacts.predictions import MSE, TargetScaler, write_predictions
from megdecode.artifacts.preprocessed import TRIALS, non_finite_trials_message, read_subject
from megdecode.artifacts.splits import PRED_SPLITS, TRAIN, VAL, check_no_leakage
from megdecode.ridge import RidgeModel, bin_time, fit_ridge


def train_ridge(
    subject_dir: Path | str,
    latents_dir: Path | str,
    predictions_path: Path | str,
    model_path: Path | str,
    cfg: Mapping[str, Any],
    threads: int = 1,
) -> RidgeModel:
    """Fit, predict and write ``predictions.npz`` (regression head only) and ``model.npz``.

    ``cfg`` is the validated ``ridge`` slice (``alphas``, ``time_bin``, ``selection``). BLAS is limited to
    ``threads`` (the rule's threads) even if numpy was loaded before the job started.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, int(threads))):
        return _train_ridge(subject_dir, latents_dir, predictions_path, model_path, cfg)


def _train_ridge(
    subject_dir: Path | str,
    latents_dir: Path | str,
    predictions_path: Path | str,
    model_path: Path | str,
    cfg: Mapping[str, Any],
) -> RidgeModel:
    subject = read_subject(subject_dir)
    check_no_leakage(subject.trials, str(subject.path / TRIALS))
    latents = read_latents(latents_dir)
    split = subject.trials["split"].to_numpy(str)
    ids = subject.trials["image_id"].to_numpy(str)
    scaler = TargetScaler.fit(latents, ids[split == TRAIN])
    time_bin = int(cfg["time_bin"])

    def xy(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(split == name)
        X = bin_time(subject.meg, rows, time_bin)
        n_bad = len(io.non_finite_rows(X))
        if n_bad:
            raise ValueError(non_finite_trials_message(subject.path, n_bad, name))
        return X, scaler.transform(latents.values[latents.rows(ids[rows])])

    X_tr, Y_tr = xy(TRAIN)
    X_va, Y_va = xy(VAL)
    use_val = cfg["selection"] == "val" and len(X_va) > 0
    model = fit_ridge(X_tr, Y_tr, cfg["alphas"], X_va if use_val else None, Y_va if use_val else None)
    model.extra["time_bin"] = time_bin
    preds = {}
    for s in PRED_SPLITS:
        X = X_va if s == VAL else xy(s)[0]
        preds[s] = model.predict(X) if len(X) else np.zeros((0, len(scaler.mean)), np.float32)
    io.save_npz(model.to_arrays(), model_path)
    write_predictions(
        predictions_path, {s: ids[split == s] for s in PRED_SPLITS}, {MSE: preds}, scaler.mean, scaler.std
    )
    return model
