"""Time-resolved decoding: a ridge decoder in every sliding and growing window of the epoch.

``train`` trials fit it (:func:`megdecode.ridge.fit_ridge`), ``val`` trials choose alpha, test sets only
score. The brain module trained on listed windows (rule ``train_brain_window``) is scored beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from megdecode.artifacts.evaluation_tables import TIMERESOLVED_COLUMNS, write_timeresolved_table
from megdecode.artifacts.latents import Latents, read_latents
from megdecode.artifacts.predictions import MSE, standardise
from megdecode.artifacts.preprocessed import MEG, read_subject
from megdecode.artifacts.splits import TEST_SPLITS, TRAIN, VAL, check_no_leakage
from megdecode.artifacts.windows import Window, epoch_times, listed_windows, window_samples
from megdecode.config import dataclass_from_section
from megdecode.evaluation.retrieval import RetrievalSettings, summarise_items, window_rows
from megdecode.metrics.retrieval import NonFiniteError, gallery, item_scores
from megdecode.ridge import fit_ridge
from megdecode.seeds import derive_rng

log = logging.getLogger(__name__)

IN_MEMORY_BYTES = 2 * 1024**3  # time-resolved decoding loads meg.npy into memory below this size


@dataclass(frozen=True)
class TimeResolvedSettings:
    """Windows of the time-resolved ridge decoding (seconds, relative to image onset)."""

    sliding_length: float
    sliding_step: float
    growing_start: float
    growing_step: float
    tmin: float | None
    tmax: float | None
    alphas: tuple[float, ...]
    retrieval: RetrievalSettings

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TimeResolvedSettings:
        """From the validated ``evaluation`` slice (``topk``, ``ci_level`` and ``timeresolved``)."""
        tr = cfg["timeresolved"]
        values = dict(
            sliding_length=float(tr["sliding"]["length"]),
            sliding_step=float(tr["sliding"]["step"]),
            growing_start=float(tr["growing"]["start"]),
            growing_step=float(tr["growing"]["step"]),
            tmin=tr["tmin"],
            tmax=tr["tmax"],
            alphas=tuple(float(a) for a in tr["alphas"]),
            retrieval=RetrievalSettings(
                topk=tuple(int(k) for k in cfg["topk"]),
                n_bootstrap=int(tr["n_bootstrap"]),
                ci_level=float(cfg["ci_level"]),
                chance_shuffles=0,
            ),
        )
        return dataclass_from_section(cls, values, "evaluation.timeresolved")


def sliding_windows(t_start: float, t_stop: float, length: float, step: float) -> list[Window]:
    """Windows of ``length`` every ``step`` that fit in [t_start, t_stop]."""
    if length <= 0 or step <= 0:
        raise ValueError(f"window length and step must be > 0, got {length}, {step}")
    n = int(np.floor((t_stop - t_start - length) / step + 1e-9)) + 1
    return [
        Window("sliding", round(t_start + i * step, 6), round(t_start + i * step + length, 6))
        for i in range(n)
    ]


def growing_windows(start: float, t_stop: float, step: float) -> list[Window]:
    """Windows [start, start + i * step] for i = 1, 2, ... up to ``t_stop``."""
    if step <= 0:
        raise ValueError(f"growing window step must be > 0, got {step}")
    n = int(np.floor((t_stop - start) / step + 1e-9))
    return [Window("growing", round(start, 6), round(start + i * step, 6)) for i in range(1, n + 1)]


def epoch_windows(times: np.ndarray, settings: TimeResolvedSettings) -> list[Window]:
    """All sliding and growing windows of the settings inside the epoch."""
    dt = float(np.median(np.diff(times)))
    t0 = times[0] if settings.tmin is None else max(float(settings.tmin), times[0])
    t1 = times[-1] + dt if settings.tmax is None else min(float(settings.tmax), times[-1] + dt)
    windows = sliding_windows(t0, t1, settings.sliding_length, settings.sliding_step)
    windows += growing_windows(max(settings.growing_start, t0), t1, settings.growing_step)
    if not windows:
        raise ValueError(f"no window fits in {t0:.3f}..{t1:.3f} s; shorten evaluation.timeresolved windows")
    return windows


class Regressor(Protocol):
    def predict(self, X: np.ndarray) -> np.ndarray: ...


FitFn = Callable[..., Regressor]


def timeresolved_retrieval(
    meg: np.ndarray,
    trials: pd.DataFrame,
    times: np.ndarray,
    latents: Latents,
    settings: TimeResolvedSettings,
    rng: np.random.Generator,
    fit_fn: FitFn | None = None,
    windows: Sequence[Window] | None = None,
) -> pd.DataFrame:
    """Ridge decoding + retrieval in every window; columns as TIMERESOLVED_COLUMNS minus subject/backbone.

    Fits on ``train`` trials, picks alpha on ``val`` trials, scores ``test_small`` and ``test_large``.
    Targets are standardised with the statistics of the training images only.
    """
    fit_fn = fit_fn or fit_ridge
    if len(trials) != len(meg):
        raise ValueError(f"trials table has {len(trials)} rows for {len(meg)} epochs in meg.npy")
    split = trials["split"].astype(str).to_numpy()
    ids = trials["image_id"].astype(str).to_numpy()
    train, val = split == TRAIN, split == VAL
    if not train.any():
        raise ValueError("no 'train' trials in trials.tsv; rerun preprocessing")
    check_no_leakage(trials)
    Y_all = latents.get(ids)
    train_images = latents.get(np.unique(ids[train]))
    mean, std = train_images.mean(axis=0), train_images.std(axis=0)
    Y = standardise(Y_all, mean, std)
    windows = list(windows) if windows is not None else epoch_windows(times, settings)
    rows: list[dict[str, Any]] = []
    for window in tqdm(windows, desc="windows", mininterval=5):
        idx = window_samples(times, window)
        X = np.asarray(meg[:, :, idx], dtype=np.float32).reshape(len(meg), -1)
        model = fit_fn(
            X[train],
            Y[train],
            list(settings.alphas),
            X_val=X[val] if val.any() else None,
            Y_val=Y[val] if val.any() else None,
        )
        for test_set in TEST_SPLITS:
            mask = split == test_set
            if not mask.any():
                continue
            pred = np.asarray(model.predict(X[mask]), dtype=np.float64)
            gallery_ids, _ = gallery(ids[mask])
            candidates = standardise(latents.get(gallery_ids), mean, std)
            scores = item_scores(pred, ids[mask], candidates, settings.retrieval.topk)
            for row in summarise_items([scores], len(gallery_ids), settings.retrieval, rng):
                rows.append(
                    dict(
                        model="ridge",
                        head=MSE,
                        test_set=test_set,
                        window=window.name,
                        window_kind=window.kind,
                        tmin=window.tmin,
                        tmax=window.tmax,
                        **row,
                    )
                )
    return pd.DataFrame(rows)


def timeresolved_subject(
    preprocessed_dir: Path | str,
    latent_dirs: Mapping[str, Path | str],
    outputs: Mapping[str, Path | str],
    subject: str,
    cfg: Mapping[str, Any],
    seed: int,
    fit_fn: FitFn | None = None,
    brain_window_files: Mapping[str, Mapping[str, Path | str]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Time-resolved decoding of one subject for every backbone in ``outputs`` (MEG loaded once).

    ``latent_dirs[backbone]`` is the backbone's latents folder, ``outputs[backbone]`` its TSV.
    ``brain_window_files[backbone][window name]`` is the predictions.npz of a brain module trained on
    that window of ``cfg['timeresolved']['brain_windows']``; its retrieval rows join the table.
    """
    # loaded once for every window and backbone (memory-mapped above IN_MEMORY_BYTES)
    data = read_subject(preprocessed_dir, subject, in_memory_below=IN_MEMORY_BYTES)
    meg, trials = data.meg, data.trials
    times = epoch_times(data.info, meg.shape[-1])
    settings = TimeResolvedSettings.from_config(cfg)
    windows = {w.name: w for w in listed_windows(cfg["timeresolved"]["brain_windows"])}
    tables = {}
    for backbone, output in outputs.items():
        latents = read_latents(latent_dirs[backbone])
        rng = derive_rng(int(seed), "timeresolved", backbone, subject)
        try:
            df = timeresolved_retrieval(meg, trials, times, latents, settings, rng, fit_fn)
        except NonFiniteError as err:  # the latents were checked when read: the MEG is not finite
            raise NonFiniteError(
                f"{data.path / MEG}: {err}. Delete that file and run the same snakemake command again"
            ) from None
        brain_rows = []
        for name, path in (brain_window_files or {}).get(backbone, {}).items():
            if name not in windows:
                raise KeyError(f"{path}: window {name!r} is not in evaluation.timeresolved.brain_windows")
            w = windows[name]
            labels = dict(model="brain", window=w.name, window_kind=w.kind, tmin=w.tmin, tmax=w.tmax)
            brain_rng = derive_rng(int(seed), "timeresolved_brain", backbone, subject, name)
            brain_rows += window_rows(path, labels, latents, settings.retrieval, brain_rng)
        if brain_rows:
            df = pd.concat([df, pd.DataFrame(brain_rows)], ignore_index=True)
        df.insert(0, "backbone", backbone)
        df.insert(0, "subject", subject)
        tables[backbone] = df.reindex(columns=TIMERESOLVED_COLUMNS)
        write_timeresolved_table(tables[backbone], output)
        best = tables[backbone].query("metric == 'top5_acc' and window_kind == 'sliding'")
        if len(best):
            top = best.loc[best.value.idxmax()]
            log.info(
                "%s sub-%s: best sliding top-5 %.3f (%s, %s)",
                backbone,
                subject,
                top.value,
                top.window,
                top.test_set,
            )
    return tables
