"""The fMRI ceiling: the simulated 7T study's fair ideal observer on the study's own test trials.

Rule ``fmri_ceiling`` (one job per subject): rebuilds the subject's world from the stimuli, the seed and
``fmri.simulation`` (and checks it against the betas on disk: a mismatch names the rule to rerun), removes
each trial's session gain and offset (a decoder can estimate them from the session's training trials), and
ranks the test set's gallery images by the likelihood of each test response under the fair observer
(:func:`megdecode.simulate.fmri_observer.fair_scores`): it knows what a decoder could learn from the training
concepts and marginalises each held-out concept's own code with its prior. ``test_small``: the average of an
image's repetitions; ``test_large``: single trials; the same galleries and metrics as the decoders' retrieval
(:mod:`megdecode.evaluation.retrieval`), written as model ``ceiling``, backbone ``images``, head ``ideal``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.evaluation_tables import FULL_WINDOW, write_retrieval_table
from megdecode.artifacts.fmri import TEST, read_fmri_subject, repetition_groups
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL
from megdecode.evaluation.retrieval import RetrievalSettings, retrieval_table, summarise_items
from megdecode.metrics.retrieval import gallery, sim_scores
from megdecode.seeds import derive_rng
from megdecode.simulate.fmri import simulate_subject
from megdecode.simulate.fmri_observer import fair_scores

log = logging.getLogger(__name__)

MODEL, BACKBONE, HEAD = "ceiling", "images", "ideal"


def ceiling_rows(
    code: Any, clean: np.ndarray, trials: pd.DataFrame, settings: RetrievalSettings, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Retrieval rows of the fair observer on ``clean`` (session-corrected betas, rows of ``trials``)."""
    split = trials["split"].to_numpy(str)
    ids = trials["image_id"].to_numpy(str)
    training = np.unique(trials.loc[split != TEST, "concept"].to_numpy(str))
    test_rows = np.flatnonzero(split == TEST)
    groups = repetition_groups(trials)
    sets = {TEST_LARGE: [(clean[test_rows], ids[test_rows], 1)]}
    by_count: dict[int, list[str]] = {}
    for image, rows in groups.items():
        by_count.setdefault(len(rows), []).append(image)
    sets[TEST_SMALL] = [
        (np.stack([clean[groups[i]].mean(axis=0) for i in images]), np.array(images, dtype=str), n)
        for n, images in sorted(by_count.items())
    ]
    out = []
    for test_set, parts in sets.items():
        item_ids = np.concatenate([part[1] for part in parts])
        gallery_ids, target = gallery(item_ids)
        scores = np.concatenate([fair_scores(code, x, gallery_ids, n, training) for x, _, n in parts])
        per_item = sim_scores(scores, target, settings.topk)
        for row in summarise_items([per_item], len(gallery_ids), settings, rng):
            out.append(dict(head=HEAD, test_set=test_set, window=FULL_WINDOW, **row))
    return out


def fmri_ceiling_job(
    stimuli_table: Path | str,
    images_root: Path | str,
    subject_dir: Path | str,
    subject: str,
    simulation_cfg: Mapping[str, Any],
    evaluation_cfg: Mapping[str, Any],
    seed: int,
    out_table: Path | str,
) -> pd.DataFrame:
    """Rule ``fmri_ceiling``: the fair observer's retrieval table of one simulated subject."""
    stored = read_fmri_subject(subject_dir)
    sim = simulate_subject(stimuli_table, images_root, subject, simulation_cfg, seed)
    if stored.betas.shape != sim.fmri.betas.shape or not np.array_equal(stored.betas, sim.fmri.betas):
        raise ValueError(
            f"{stored.path}: the betas on disk are not those of fmri.simulation and seed {seed}; rerun "
            "the rule "
            "simulate_fmri for this subject"
        )
    trials = sim.fmri.trials
    clean = sim.sessions.remove(np.asarray(stored.betas, np.float64), trials["session"].to_numpy(str))
    settings = RetrievalSettings.from_config(evaluation_cfg)
    rows = ceiling_rows(sim.code, clean, trials, settings, derive_rng(int(seed), "fmri-ceiling", subject))
    table = retrieval_table(rows, subject, BACKBONE, MODEL)
    write_retrieval_table(table, out_table)
    top5 = table.query("metric == 'top5_acc'")[["test_set", "value", "chance"]]
    log.info("fMRI ceiling sub-%s: %s", subject, top5.to_dict("records"))
    return table
