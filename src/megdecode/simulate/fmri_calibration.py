"""Calibration of the simulated 7T study to the Natural Scenes Dataset, by ideal observers only.

Nothing here runs a decoder. Two kinds of NSD numbers fix the world (docs/fmri.md, "Calibration"):

- per voxel: the ncsnr distribution of NSD's nsdgeneral voxels and their count, which are schema defaults
  drawn directly (:func:`megdecode.simulate.fmri.voxel_code`), checked here on the drawn world;
- per population: MindEye's image retrieval on NSD (:data:`MINDEYE_TOP1_300`), matched by the ideal observer's
  identification of the simulator's own images in the same protocol (:func:`anchor_accuracy`), which sets
  ``neural_noise`` (:func:`calibrate_neural_noise`).

The anchor's images are ``exp`` images of training concepts: new exemplars of familiar concepts, as NSD's test
images are new scenes of categories its training images cover; for them the fair ceiling and the oracle
coincide (every concept code is learnable from its other exemplars).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.fmri import TRAIN
from megdecode.seeds import derive_rng
from megdecode.simulate import fmri_observer as ob
from megdecode.simulate.fmri import VoxelCode, noise_ceiling

log = logging.getLogger(__name__)

#: MindEye's brain-to-image retrieval on NSD: top-1 among 300 test images (3-trial averages, 30 random draws
#: of 300 of the 982 test images), NSD subjects 1, 2, 5, 7 [V: MindEye's code, MedARC-AI/
#: fMRI-reconstruction-NSD, src/Retrievals.py, results noted under "Retrieval on test set"].
MINDEYE_TOP1_300 = {"01": 0.9718, "02": 0.9710, "05": 0.9067, "07": 0.8941}
ANCHOR_TOP1 = float(np.mean(list(MINDEYE_TOP1_300.values())))
ANCHOR_GALLERY, ANCHOR_TRIALS = 300, 3
#: NSD's per-voxel targets (1.8-mm nsdgeneral, b3 betas; subjects 1, 2, 5, 7) [S: computed from NSD's
#: ncsnr volumes in brain-score's NSD notebook, volumetric/01_nsd_data_exploration.ipynb].
NSD_NCSNR_MEDIAN = float(np.mean([0.361, 0.361, 0.415, 0.281]))
NSD_NCSNR_MEAN_OVER_MEDIAN = 0.3868 / 0.3608


def anchor_pool(stimuli: pd.DataFrame) -> np.ndarray:
    """The images the anchor draws galleries from: ``exp`` images of training concepts, sorted."""
    rows = (stimuli["role"] == "exp") & (stimuli["concept_split"] == TRAIN)
    return np.sort(stimuli.loc[rows, "image_id"].to_numpy(str))


def anchor_accuracy(
    codes: Mapping[str, VoxelCode], pool: Sequence[str], n_draws: int, seed: int
) -> dict[str, float]:
    """Per subject, the ideal observer's top-1 identification among 300 images of ``pool`` from 3-trial
    averages (``n_draws`` galleries; the same galleries and noise draws at every call: common random
    numbers, so accuracy is a smooth function of the world's parameters)."""
    out = {}
    for subject, code in codes.items():
        rng = derive_rng(seed, "fmri-calibration", subject)
        out[subject] = ob.identification(
            code, pool, ANCHOR_GALLERY, ANCHOR_TRIALS, n_draws, rng, known_concepts=code.concept_names
        )
    return out


def calibrate_neural_noise(
    codes: Mapping[str, VoxelCode],
    pool: Sequence[str],
    n_draws: int,
    seed: int,
    bounds: tuple[float, float] = (0.5, 4.0),
    steps: int = 8,
    target: float = ANCHOR_TOP1,
) -> tuple[float, pd.DataFrame]:
    """Bisect ``neural_noise`` (more noise, lower accuracy) until the subjects' mean anchor accuracy meets
    ``target``; returns the value (rounded to 2 decimals) and every step's numbers."""
    lo, hi = bounds
    history = []
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        acc = anchor_accuracy({s: c.with_neural_noise(mid) for s, c in codes.items()}, pool, n_draws, seed)
        mean = float(np.mean(list(acc.values())))
        history.append({"neural_noise": mid, "anchor_top1": mean, **{f"sub-{s}": a for s, a in acc.items()}})
        log.info("neural_noise %.4f: anchor top-1 %.4f", mid, mean)
        lo, hi = (mid, hi) if mean > target else (lo, mid)
    return round(0.5 * (lo + hi), 2), pd.DataFrame(history)


def world_summary(code: VoxelCode, pool: Sequence[str], test_ids: Sequence[str]) -> dict[str, Any]:
    """Per-voxel and population statistics of one subject's world: ncsnr (median, mean / median, the number
    lowered to fit the neural noise), NSD's noise ceilings, and the ideal observer's single-trial d' on
    pairs of anchor images (known concepts) and of test images (codes of their held-out concepts
    marginalised: the fair ceiling)."""
    pool_d = ob.pairwise_dprime(code, pool, known_concepts=code.concept_names)
    training = np.unique(code.concepts[code.rows(pool)])
    test_d = ob.pairwise_dprime(code, test_ids, known_concepts=training)
    return {
        "n_voxels": int(len(code.ncsnr)),
        "ncsnr_median": float(np.median(code.ncsnr)),
        "ncsnr_mean_over_median": float(code.ncsnr.mean() / np.median(code.ncsnr)),
        "ncsnr_lowered": int(code.truth.get("ncsnr_lowered", 0)),
        "nc1_median_pct": float(np.median(noise_ceiling(code.ncsnr, 1))),
        "nc3_median_pct": float(np.median(noise_ceiling(code.ncsnr, 3))),
        "dprime_anchor_median": float(np.median(pool_d)),
        "dprime_anchor_min": float(pool_d.min()),
        "dprime_test_fair_median": float(np.median(test_d)),
        "dprime_test_fair_min": float(test_d.min()),
    }
