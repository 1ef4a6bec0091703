"""The ridge-baseline job of one (backbone, subject): fit on train, choose alpha on val, predict val and
tests.

The solver is :func:`megdecode.ridge.fit_ridge` on time-binned MEG (:func:`megdecode.ridge.bin_time`);
:func:`fit_and_write_ridge` is the part shared with the fMRI ridge job (:mod:`megdecode.training.fmri`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from megdecode import io
from megdecode.artifacts.latents import Latents, read_latents
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
    time_bin = int(cfg["time_bin"])

    def features(name: str) -> np.ndarray:
        X = bin_time(subject.meg, np.flatnonzero(split == name), time_bin)
        n_bad = len(io.non_finite_rows(X))
        if n_bad:
            raise ValueError(non_finite_trials_message(subject.path, n_bad, name))
        return X

    return fit_and_write_ridge(
        features,
        {s: ids[split == s] for s in (TRAIN, *PRED_SPLITS)},
        latents,
        cfg["alphas"],
        cfg["selection"] == "val",
        model_path,
        predictions_path,
        extra={"time_bin": time_bin},
    )


def fit_and_write_ridge(
    features: Callable[[str], np.ndarray],
    image_ids: Mapping[str, np.ndarray],
    latents: Latents,
    alphas: Sequence[float],
    select_on_val: bool,
    model_path: Path | str,
    predictions_path: Path | str,
    extra: Mapping[str, Any] | None = None,
) -> RidgeModel:
    """Ridge from ``features(split)`` (n, features) to the latents of ``image_ids[split]``, standardised with
    the training images; alpha on ``val`` when ``select_on_val`` and val is not empty (else generalised
    cross-validation). Writes the model (with ``extra``) and the predictions of every split (MSE head)."""
    scaler = TargetScaler.fit(latents, image_ids[TRAIN])

    def targets(split: str) -> np.ndarray:
        return scaler.transform(latents.values[latents.rows(image_ids[split])])

    x_val = features(VAL)
    use_val = select_on_val and len(x_val) > 0
    model = fit_ridge(
        features(TRAIN), targets(TRAIN), alphas, x_val if use_val else None, targets(VAL) if use_val else None
    )
    model.extra.update(extra or {})
    preds = {}
    for split in PRED_SPLITS:
        x = x_val if split == VAL else features(split)
        preds[split] = model.predict(x) if len(x) else np.zeros((0, len(scaler.mean)), np.float32)
    io.save_npz(model.to_arrays(), model_path)
    ids = {split: image_ids[split] for split in PRED_SPLITS}
    write_predictions(predictions_path, ids, {MSE: preds}, scaler.mean, scaler.std)
    return model
