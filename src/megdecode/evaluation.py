"""Retrieval evaluation of decoded latents and time-resolved decoding.

Reads TRAIN's ``predictions.npz`` (predictions in the standardised target space plus the training-image
``target_mean``/``target_std``), standardises the candidate latents the same way, and scores retrieval with
:mod:`megdecode.metrics.retrieval` on the small test set (gallery = the test images) and the large test set
(gallery = the large-set images). Several seeds of one model are pooled per item (the per-item score is
averaged over seeds) before the item-level bootstrap, so the CI reflects test-item sampling.

Time-resolved decoding fits a ridge decoder (TRAIN's ``megdecode.ridge.fit_ridge``) in every sliding and
growing window of the epoch: ``train`` trials fit it, ``val`` trials choose alpha, test sets only score.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from megdecode.io import load_npy, load_npz, read_json, read_tsv, write_tsv
from megdecode.metrics import retrieval as rm

log = logging.getLogger(__name__)

TEST_SETS = ("test_small", "test_large")
COLUMNS = [
    "subject",
    "backbone",
    "model",
    "test_set",
    "window",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "chance",
]
TIMERESOLVED_COLUMNS = [*COLUMNS[:5], "window_kind", "tmin", "tmax", *COLUMNS[5:]]
FULL_WINDOW = "full"
BRAIN_WINDOW_KIND = "listed"  # window_kind of the brain module trained on a listed window
IN_MEMORY_BYTES = 2 * 1024**3  # time-resolved decoding loads meg.npy into memory below this size


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RetrievalSettings:
    """How retrieval is scored and how its confidence intervals are drawn."""

    topk: tuple[int, ...] = (1, 5)
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    chance_shuffles: int = 100

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RetrievalSettings:
        return cls(
            topk=tuple(int(k) for k in cfg.get("topk", cls.topk)),
            n_bootstrap=int(cfg.get("n_bootstrap", cls.n_bootstrap)),
            ci_level=float(cfg.get("ci_level", cls.ci_level)),
            chance_shuffles=int(cfg.get("chance_shuffles", cls.chance_shuffles)),
        )

    @property
    def metrics(self) -> list[str]:
        return [f"top{k}_acc" for k in self.topk] + ["median_rank"]


@dataclass(frozen=True)
class TimeResolvedSettings:
    """Windows of the time-resolved ridge decoding (seconds, relative to image onset)."""

    sliding_length: float = 0.1
    sliding_step: float = 0.05
    growing_start: float = 0.0
    growing_step: float = 0.1
    tmin: float | None = None
    tmax: float | None = None
    alphas: tuple[float, ...] = tuple(10.0**k for k in range(-1, 9))
    retrieval: RetrievalSettings = field(default_factory=lambda: RetrievalSettings(n_bootstrap=200))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TimeResolvedSettings:
        tr = cfg.get("timeresolved", {})
        sliding, growing = tr.get("sliding", {}), tr.get("growing", {})
        return cls(
            sliding_length=float(sliding.get("length", cls.sliding_length)),
            sliding_step=float(sliding.get("step", cls.sliding_step)),
            growing_start=float(growing.get("start", cls.growing_start)),
            growing_step=float(growing.get("step", cls.growing_step)),
            tmin=tr.get("tmin"),
            tmax=tr.get("tmax"),
            alphas=tuple(float(a) for a in tr.get("alphas", cls.alphas)),
            retrieval=RetrievalSettings(
                topk=tuple(int(k) for k in cfg.get("topk", (1, 5))),
                n_bootstrap=int(tr.get("n_bootstrap", 200)),
                ci_level=float(cfg.get("ci_level", 0.95)),
            ),
        )


def job_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator seeded from the config seed and the job's wildcards (stable across processes)."""
    return np.random.default_rng([int(seed), *(zlib.crc32(str(x).encode()) for x in labels)])


# --------------------------------------------------------------------------- latents


@dataclass
class Latents:
    """One backbone's latents, flattened to (images, dim), addressable by image id."""

    ids: np.ndarray
    values: np.ndarray
    meta: dict[str, Any]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values).reshape(len(self.values), -1)
        self.ids = np.asarray(self.ids).astype(str)
        if len(self.ids) != len(self.values):
            raise ValueError(f"{self.source}: {len(self.ids)} ids for {len(self.values)} latents")
        self._row = {image_id: i for i, image_id in enumerate(self.ids)}

    def rows(self, image_ids: Iterable[str]) -> np.ndarray:
        """Row indices of ``image_ids``; a missing id is an error naming the latents file."""
        image_ids = [str(x) for x in image_ids]
        missing = [x for x in image_ids if x not in self._row]
        if missing:
            raise KeyError(
                f"{len(missing)} image ids have no latent in {self.source} (first: {missing[0]!r}); "
                "rerun the latents job for this backbone on the current stimuli table"
            )
        return np.array([self._row[x] for x in image_ids], dtype=np.int64)

    def get(self, image_ids: Iterable[str]) -> np.ndarray:
        return np.asarray(self.values[self.rows(image_ids)], dtype=np.float64)

    @property
    def label(self) -> str:
        return backbone_label(self.meta, default=Path(self.source).name)


def backbone_label(meta: Mapping[str, Any], default: str) -> str:
    """Display label of a backbone; random (not pretrained) features say so."""
    label = str(meta.get("label") or default)
    if meta.get("pretrained") is False and "random" not in label.lower():
        label += " (random features)"
    return label


def load_latents(latent_dir: Path | str) -> Latents:
    """Read ``latents.npy`` + ``index.tsv`` + ``latents.json`` of one backbone."""
    latent_dir = Path(latent_dir)
    values = load_npy(latent_dir / "latents.npy", mmap=True)
    index = read_tsv(latent_dir / "index.tsv", dtype={"image_id": str})
    if "image_id" not in index:
        raise ValueError(f"{latent_dir / 'index.tsv'} has no image_id column; rerun the latents job")
    meta_path = latent_dir / "latents.json"
    meta = read_json(meta_path) if meta_path.is_file() else {}
    return Latents(index["image_id"].to_numpy(), values, meta, source=str(latent_dir))


# --------------------------------------------------------------------------- retrieval


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std with the training-image statistics; zero-variance dims are only centred."""
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    return (np.asarray(x, dtype=np.float64) - mean) / np.where(std > 0, std, 1.0)


def gallery(image_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The gallery of a test set (its unique images, sorted) and each item's column in it."""
    gallery_ids, target = np.unique(np.asarray(image_ids).astype(str), return_inverse=True)
    return gallery_ids, target.reshape(-1)


def item_scores(
    pred: np.ndarray,
    image_ids: Sequence[str],
    candidates: np.ndarray,
    topk: Sequence[int] = (1, 5),
) -> dict[str, np.ndarray]:
    """Per-item retrieval scores of ``pred`` vs ``candidates`` (rows = the sorted unique ``image_ids``)."""
    _, target = gallery(image_ids)
    return sim_scores(rm.cosine_similarity(pred, candidates), target, topk)


def sim_scores(sim: np.ndarray, target: np.ndarray, topk: Sequence[int] = (1, 5)) -> dict[str, np.ndarray]:
    """Per-item top-k hits and relative ranks from a similarity matrix."""
    scores = {f"top{k}_acc": rm.topk_hits(sim, target, k) for k in topk}
    scores["median_rank"] = rm.relative_ranks(sim, target)
    return scores


def shuffled_scores(
    sim: np.ndarray, target: np.ndarray, topk: Sequence[int], n_shuffles: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Chance model: per-item scores averaged over ``n_shuffles`` permutations of the predictions.

    Permuting predictions across items permutes the rows of ``sim``; averaging many permutations gives
    a per-item estimate of the chance score rather than one noisy draw.
    """
    draws = [sim_scores(sim[rng.permutation(len(sim))], target, topk) for _ in range(max(n_shuffles, 1))]
    return {m: np.mean([d[m] for d in draws], axis=0) for m in draws[0]}


def chance_level(metric: str, gallery_size: int) -> float:
    if metric == "median_rank":
        return rm.chance_median_rank(gallery_size)
    if metric.startswith("top") and metric.endswith("_acc"):
        return rm.chance_topk_acc(int(metric[3:-4]), gallery_size)
    raise ValueError(f"unknown retrieval metric {metric!r}")


def summarise_items(
    per_seed: Sequence[Mapping[str, np.ndarray]],
    gallery_size: int,
    settings: RetrievalSettings,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Pool per-item scores over seeds, then value + bootstrap CI per metric."""
    rows = []
    for metric in settings.metrics:
        per_item = np.mean([s[metric] for s in per_seed], axis=0)
        statistic = np.median if metric == "median_rank" else np.mean
        low, high = rm.bootstrap_ci(per_item, statistic, settings.n_bootstrap, settings.ci_level, rng)
        rows.append(
            dict(
                metric=metric,
                value=float(statistic(per_item)),
                ci_low=low,
                ci_high=high,
                chance=chance_level(metric, gallery_size),
            )
        )
    return rows


def evaluate_predictions(
    predictions: Sequence[Mapping[str, np.ndarray]],
    latents: Latents,
    settings: RetrievalSettings,
    rng: np.random.Generator,
    shuffle: bool = False,
    source: str = "<predictions>",
) -> list[dict[str, Any]]:
    """Retrieval rows (test_set, metric, value, ci, chance) for one model, pooled over its seeds.

    ``shuffle=True`` is the chance model: each seed's predictions are permuted across items
    (``settings.chance_shuffles`` times, per-item scores averaged), which breaks the MEG-image pairing
    and must land at chance.
    """
    if not predictions:
        raise ValueError(f"no predictions given for {source}")
    rows: list[dict[str, Any]] = []
    for test_set in TEST_SETS:
        key = f"{test_set}_pred"
        present = [key in p for p in predictions]
        if not any(present):
            log.warning("%s: no %s predictions; skipped", source, test_set)
            continue
        if not all(present):
            raise ValueError(f"{source}: {key} present for some seeds only; rerun the training jobs")
        ids = np.asarray(predictions[0][f"{test_set}_image_id"]).astype(str)
        per_seed = []
        for p in predictions:
            if not np.array_equal(np.asarray(p[f"{test_set}_image_id"]).astype(str), ids):
                raise ValueError(f"{source}: seeds disagree on the {test_set} item order; rerun training")
            pred = np.asarray(p[key], dtype=np.float64)
            if len(pred) != len(ids):
                raise ValueError(f"{source}: {key} has {len(pred)} rows for {len(ids)} image ids")
            gallery_ids, target = gallery(ids)
            candidates = standardise(latents.get(gallery_ids), p["target_mean"], p["target_std"])
            sim = rm.cosine_similarity(pred, candidates)
            if shuffle:
                per_seed.append(shuffled_scores(sim, target, settings.topk, settings.chance_shuffles, rng))
            else:
                per_seed.append(sim_scores(sim, target, settings.topk))
        n_gallery = len(np.unique(ids))
        for row in summarise_items(per_seed, n_gallery, settings, rng):
            rows.append(dict(test_set=test_set, window=FULL_WINDOW, **row))
    return rows


def retrieval_table(
    rows: Sequence[Mapping[str, Any]], subject: str, backbone: str, model: str, extra: Sequence[str] = ()
) -> pd.DataFrame:
    """Rows -> the long-format table of the evaluation contract."""
    df = pd.DataFrame(list(rows))
    df.insert(0, "model", model)
    df.insert(0, "backbone", backbone)
    df.insert(0, "subject", subject)
    columns = [*COLUMNS[:5], *extra, *COLUMNS[5:]]
    return df.reindex(columns=columns)


def _source_model(model: str, prediction_files: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    if model in prediction_files:
        return model
    if model != "chance":
        raise KeyError(f"no predictions given for model {model!r}; check the rule's inputs")
    if len(prediction_files) == 1:
        return next(iter(prediction_files))
    source = cfg.get("chance_source", "brain")
    return source if source in prediction_files else "ridge"


def evaluate_all(jobs: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any], seed: int) -> None:
    """Run :func:`evaluate_backbone` per job (keys: prediction_files, outputs, latent_dir, backbone)."""
    for job in jobs:
        evaluate_backbone(
            job["prediction_files"], job["outputs"], job["latent_dir"], job["backbone"], cfg, seed
        )


def evaluate_backbone(
    prediction_files: Mapping[str, Mapping[str, Sequence[str]]],
    outputs: Mapping[str, Mapping[str, str]],
    latent_dir: Path | str,
    backbone: str,
    cfg: Mapping[str, Any],
    seed: int,
) -> None:
    """Score every model and subject of one backbone and write one TSV per (model, subject).

    ``prediction_files[model][subject]`` lists the predictions.npz of each seed;
    ``outputs[model][subject]`` is the TSV to write. The ``chance`` model re-scores the predictions of
    ``cfg['chance_source']`` (falling back to ``ridge``) with the items shuffled.
    """
    settings = RetrievalSettings.from_config(cfg)
    latents = load_latents(latent_dir)
    for model, per_subject in outputs.items():
        for subject, out in per_subject.items():
            source_model = _source_model(model, prediction_files, cfg)
            files = [str(f) for f in prediction_files[source_model][subject]]
            preds = [load_npz(f) for f in files]
            rng = job_rng(seed, "retrieval", model, backbone, subject)
            rows = evaluate_predictions(
                preds, latents, settings, rng, shuffle=model == "chance", source=", ".join(files)
            )
            table = retrieval_table(rows, subject, backbone, model)
            write_tsv(table, out)
            top5 = table.query("metric == 'top5_acc'")[["test_set", "value", "chance"]]
            log.info("%s %s sub-%s: %s", model, backbone, subject, top5.to_dict("records"))


# --------------------------------------------------------------------------- time-resolved decoding


@dataclass(frozen=True)
class Window:
    """A time window [tmin, tmax) in seconds relative to image onset."""

    kind: str
    tmin: float
    tmax: float

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.tmin * 1000:+.0f}_{self.tmax * 1000:+.0f}ms"

    @property
    def center(self) -> float:
        return (self.tmin + self.tmax) / 2


def brain_windows(timeresolved_cfg: Mapping[str, Any]) -> list[Window]:
    """The windows the brain module is trained in (``evaluation.timeresolved.brain_windows``)."""
    return [
        Window(BRAIN_WINDOW_KIND, float(a), float(b)) for a, b in timeresolved_cfg.get("brain_windows", [])
    ]


def brain_window_rows(
    prediction_file: Path | str,
    window: Window,
    latents: Latents,
    settings: RetrievalSettings,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Retrieval rows of a brain module trained on ``window`` (its predictions.npz), labelled with it."""
    rows = evaluate_predictions(
        [load_npz(prediction_file)], latents, settings, rng, source=str(prediction_file)
    )
    return [
        dict(
            row,
            model="brain",
            window=window.name,
            window_kind=window.kind,
            tmin=window.tmin,
            tmax=window.tmax,
        )
        for row in rows
    ]


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


def window_samples(times: np.ndarray, window: Window) -> np.ndarray:
    """Sample indices with ``tmin <= t < tmax`` (half a sample of tolerance)."""
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    idx = np.flatnonzero((times >= window.tmin - dt / 2) & (times < window.tmax - dt / 2))
    if idx.size == 0:
        raise ValueError(
            f"window {window.name} holds no sample of the epoch ({times[0]:.3f}..{times[-1]:.3f} s)"
        )
    return idx


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


def check_no_leakage(trials: pd.DataFrame) -> None:
    """Raise if a test image (or, when a ``concept`` column exists, a test concept) is in train/val trials."""
    split = trials["split"].astype(str)
    fit = split.isin(["train", "val"])
    test = split.isin(TEST_SETS)
    for column in ("image_id", "concept"):
        if column not in trials:
            continue
        leaked = set(trials.loc[fit, column].astype(str)) & set(trials.loc[test, column].astype(str))
        if leaked:
            raise ValueError(
                f"{len(leaked)} test {column}s are also in train/val trials (e.g. {sorted(leaked)[0]!r}); "
                "the trials table leaks the test sets, rerun preprocessing with a correct split"
            )


def default_fit_fn() -> FitFn:
    """TRAIN's ridge: ``fit_ridge(X_train, Y_train, alphas, X_val=None, Y_val=None) -> model``."""
    from megdecode.ridge import fit_ridge

    return fit_ridge


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
    fit_fn = fit_fn or default_fit_fn()
    if len(trials) != len(meg):
        raise ValueError(f"trials table has {len(trials)} rows for {len(meg)} epochs in meg.npy")
    split = trials["split"].astype(str).to_numpy()
    ids = trials["image_id"].astype(str).to_numpy()
    train, val = split == "train", split == "val"
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
        for test_set in TEST_SETS:
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
                        test_set=test_set,
                        window=window.name,
                        window_kind=window.kind,
                        tmin=window.tmin,
                        tmax=window.tmax,
                        **row,
                    )
                )
    return pd.DataFrame(rows)


def epoch_times(info: Mapping[str, Any], n_times: int) -> np.ndarray:
    """Sample times (s) of the epochs from preprocessing's info.json."""
    try:
        sfreq, tmin = float(info["sfreq"]), float(info["tmin"])
    except KeyError as err:
        raise KeyError(f"info.json lacks {err}; rerun preprocessing") from None
    return tmin + np.arange(n_times) / sfreq


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
    preprocessed_dir = Path(preprocessed_dir)
    meg = load_npy(preprocessed_dir / "meg.npy", mmap=True)
    if meg.nbytes <= IN_MEMORY_BYTES:  # one read instead of one per window
        meg = np.asarray(meg)
    trials = read_tsv(preprocessed_dir / "trials.tsv", dtype={"image_id": str, "subject": str})
    times = epoch_times(read_json(preprocessed_dir / "info.json"), meg.shape[-1])
    settings = TimeResolvedSettings.from_config(cfg)
    windows = {w.name: w for w in brain_windows(cfg.get("timeresolved", {}))}
    tables = {}
    for backbone, output in outputs.items():
        latents = load_latents(latent_dirs[backbone])
        rng = job_rng(seed, "timeresolved", backbone, subject)
        df = timeresolved_retrieval(meg, trials, times, latents, settings, rng, fit_fn)
        brain_rows = []
        for name, path in (brain_window_files or {}).get(backbone, {}).items():
            if name not in windows:
                raise KeyError(f"{path}: window {name!r} is not in evaluation.timeresolved.brain_windows")
            brain_rng = job_rng(seed, "timeresolved_brain", backbone, subject, name)
            brain_rows += brain_window_rows(path, windows[name], latents, settings.retrieval, brain_rng)
        if brain_rows:
            df = pd.concat([df, pd.DataFrame(brain_rows)], ignore_index=True)
        df.insert(0, "backbone", backbone)
        df.insert(0, "subject", subject)
        tables[backbone] = df.reindex(columns=TIMERESOLVED_COLUMNS)
        write_tsv(tables[backbone], output)
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
