"""Retrieval of decoded latents on the two test sets and validation, with bootstrap CIs and a chance model.

Reads TRAIN's predictions (:mod:`megdecode.artifacts.predictions`), standardises the candidate latents with
the same training-image statistics, and scores retrieval with :mod:`megdecode.metrics.retrieval`: small test
set (gallery = the test images), large test set (gallery = the large-set images). Several seeds of one model
are pooled per item (the per-item score is averaged over seeds) before the item-level bootstrap, so the CI
reflects test-item sampling.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.evaluation_tables import FULL_WINDOW, RETRIEVAL_COLUMNS, write_retrieval_table
from megdecode.artifacts.latents import Latents, read_latents
from megdecode.artifacts.predictions import MSE, Predictions, read_predictions
from megdecode.artifacts.splits import TEST_SPLITS, VAL
from megdecode.config import dataclass_from_section
from megdecode.metrics import retrieval as rm
from megdecode.seeds import derive_rng

log = logging.getLogger(__name__)

#: The sets every decoder is scored on: the two test sets, then validation (what model selection, e.g. a
#: table's "best decoder", may read; scored last, so the test sets' bootstrap draws do not depend on it).
SCORED_SETS = (*TEST_SPLITS, VAL)


@dataclass(frozen=True)
class RetrievalSettings:
    """How retrieval is scored and how its confidence intervals are drawn."""

    topk: tuple[int, ...]
    n_bootstrap: int
    ci_level: float
    chance_shuffles: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RetrievalSettings:
        """From the validated ``evaluation`` slice (other keys of the section are ignored)."""
        keys = ("topk", "n_bootstrap", "ci_level", "chance_shuffles")
        settings = dataclass_from_section(cls, {k: cfg[k] for k in keys}, "evaluation")
        return dataclasses.replace(settings, topk=tuple(int(k) for k in settings.topk))

    @property
    def metrics(self) -> list[str]:
        return [f"top{k}_acc" for k in self.topk] + ["median_rank"]


def shuffled_scores(
    sim: np.ndarray, target: np.ndarray, topk: Sequence[int], n_shuffles: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Chance model: per-item scores averaged over ``n_shuffles`` permutations of the predictions.

    Permuting predictions across items permutes the rows of ``sim``; averaging many permutations gives
    a per-item estimate of the chance score rather than one noisy draw.
    """
    draws = [rm.sim_scores(sim[rng.permutation(len(sim))], target, topk) for _ in range(max(n_shuffles, 1))]
    return {m: np.mean([d[m] for d in draws], axis=0) for m in draws[0]}


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
                chance=rm.chance_level(metric, gallery_size),
            )
        )
    return rows


def evaluate_predictions(
    predictions: Sequence[Predictions],
    latents: Latents,
    settings: RetrievalSettings,
    rng: np.random.Generator,
    shuffle: bool = False,
    head: str = MSE,
    sets: Sequence[str] = SCORED_SETS,
) -> list[dict[str, Any]]:
    """Retrieval rows (test_set, metric, value, ci, chance) for one model, pooled over its seeds.

    ``shuffle=True`` is the chance model: each seed's predictions are permuted across items
    (``settings.chance_shuffles`` times, per-item scores averaged), which breaks the MEG-image pairing
    and must land at chance.
    """
    if not predictions:
        raise ValueError("no predictions given")
    source = ", ".join(str(p.path) for p in predictions)
    rows: list[dict[str, Any]] = []
    for test_set in sets:
        present = [p.has(test_set, head) for p in predictions]
        if not any(present):
            if test_set != VAL:
                log.warning("%s: no %s predictions; skipped", source, test_set)
            continue
        if not all(present):
            raise ValueError(f"{source}: {test_set} predictions present for some seeds only; rerun training")
        ids = predictions[0].image_ids[test_set]
        per_seed = []
        for p in predictions:
            if not np.array_equal(p.image_ids[test_set], ids):
                raise ValueError(f"{source}: seeds disagree on the {test_set} item order; rerun training")
            gallery_ids, target = rm.gallery(ids)
            sim = rm.cosine_similarity(
                np.asarray(p.pred(test_set, head), np.float64), p.candidates(latents, gallery_ids)
            )
            if shuffle:
                per_seed.append(shuffled_scores(sim, target, settings.topk, settings.chance_shuffles, rng))
            else:
                per_seed.append(rm.sim_scores(sim, target, settings.topk))
        n_gallery = len(np.unique(ids))
        for row in summarise_items(per_seed, n_gallery, settings, rng):
            rows.append(dict(head=head, test_set=test_set, window=FULL_WINDOW, **row))
    return rows


def retrieval_table(
    rows: Sequence[Mapping[str, Any]], subject: str, backbone: str, model: str
) -> pd.DataFrame:
    """Rows -> the long-format table of the evaluation contract."""
    df = pd.DataFrame(list(rows))
    df.insert(0, "model", model)
    df.insert(0, "backbone", backbone)
    df.insert(0, "subject", subject)
    return df.reindex(columns=RETRIEVAL_COLUMNS)


def evaluate_all(jobs: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any], seed: int) -> None:
    """Score every job of :meth:`megdecode.plan.Plan.retrieval_jobs` and write its tables.

    A job has ``model``, ``backbone``, ``latent_dir``, ``prediction_files`` (subject -> the predictions of
    each seed of the model it scores: itself, or for ``chance`` its source model) and ``outputs``
    (subject -> TSV). Every head of the predictions is scored (the brain module: ``clip``, trained for
    retrieval, and ``mse``, which feeds the generators; ridge: ``mse``). The ``chance`` model re-scores its
    source's retrieval head with the items shuffled.
    """
    settings = RetrievalSettings.from_config(cfg)
    for job in jobs:
        latents = read_latents(job["latent_dir"])
        model, backbone = job["model"], job["backbone"]
        for subject, out in job["outputs"].items():
            preds = [read_predictions(f) for f in job["prediction_files"][subject]]
            heads = preds[0].head_names[:1] if model == "chance" else preds[0].head_names
            rows = []
            for head in heads:
                rng = derive_rng(int(seed), "retrieval", model, backbone, subject, head)
                rows += evaluate_predictions(
                    preds, latents, settings, rng, shuffle=model == "chance", head=head
                )
            table = retrieval_table(rows, subject, backbone, model)
            write_retrieval_table(table, out)
            top5 = table.query("metric == 'top5_acc'")[["head", "test_set", "value", "chance"]]
            log.info("%s %s sub-%s: %s", model, backbone, subject, top5.to_dict("records"))


def window_rows(
    prediction_file: Path | str,
    extra: Mapping[str, Any],
    latents: Latents,
    settings: RetrievalSettings,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Retrieval rows of one predictions file's retrieval head, each row extended with ``extra`` (window)."""
    preds = read_predictions(prediction_file)
    rows = evaluate_predictions([preds], latents, settings, rng, head=preds.head_names[0], sets=TEST_SPLITS)
    return [dict(row, **extra) for row in rows]
