"""The EEG learning curve: the MEG curve's subjects, worlds and decoders, measured by scalp electrodes.

The same experiment as :mod:`.experiment` on the simulated EEG study (:mod:`megdecode.simulate.eeg`,
parameters ``eeg.simulation``, values in docs/eeg.md):

- **Epochs**: :class:`RsvpEpochSimulator`, the MEG :class:`~.epochs.EpochSimulator` with the subject's
  electrodes (:func:`eeg_sensors`: the 10-05 montage on the subject's head sphere, average reference, the
  channels of ``things_eeg2.preprocessing.channel_regex``) and the recipe's window and rate
  (``things_eeg2.preprocessing``); the same anatomy, dipoles, responses and background dipoles, white
  electrode noise instead of the SQUIDs'.
- **Rapid serial presentation**: a trial sits at a uniform position in a sequence of ``sequence_length``
  images ``soa_s`` apart; each neighbour whose response reaches the epoch is an image of the trial's own
  role (:func:`neighbour_pools`), with its own gain and latency shifts, all drawn from the trial's own
  generator (a trial is the same in every size's job; the pools never mix roles, so no test image appears in
  a training epoch).
- **Design and decoders**: the MEG curve's (:class:`~.experiment.Design`, :func:`~.experiment.decoder_rows`:
  ridge and the brain module, with the electrodes' 2-D layout as its positions, on baseline-corrected
  epochs, the small set averaged over its repetitions).
- **Ceilings** (:mod:`.oracle`): the image oracle (decoder ``oracle_image``): the Mahalanobis distance, under
  the noise model without the neighbours, of each test epoch minus the neighbours' expected response (their
  pool's mean noiseless response at unit gain, weighted by the chance that each neighbour exists) to each
  gallery image's noiseless response. The fair ceiling (decoder ``ceiling_fair``): the MEG curve's
  :class:`~.oracle.FairCeiling` (training concepts' codes, fresh renders of each test concept, the concept's
  own code marginalised with its prior) with the neighbours as a :class:`~.oracle.NeighbourContext`
  (:meth:`RsvpEpochSimulator.neighbour_context`): each neighbour is an image of the test set's pool, so its
  codes are drawn from the mixture of its pool's concept priors (never a pool image's own response), and it
  exists with the chance its offset has. The context's mean and covariance are that mixture's exact first
  two moments, the neighbours' presence correlated through the trial's position (:func:`co_presence`); the
  ceiling treats them as one Gaussian added to the noise (its covariance / r for an average of r
  repetitions, each with its own neighbours). The true sum is a mixture over the neighbours' concepts and
  presence, not a Gaussian, so this is a Gaussian approximation of the Bayes template matcher, not a strict
  upper bound on the decoders. Like the MEG ceilings, both take unit gain and no latency shift, the
  neighbours' included.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from megdecode.artifacts.latents import Latents
from megdecode.artifacts.learning_curve import EEG, MODALITY
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, TRAIN, VAL
from megdecode.learning_curve.epochs import EpochGrid, EpochSimulator, SensorArray, subject_dipoles
from megdecode.learning_curve.experiment import (
    FAIR,
    ORACLE,
    Design,
    LearningCurveParams,
    _score_rows,
    _test_set_epochs,
    decoder_rows,
    run_and_write_job,
    world_truth,
)
from megdecode.learning_curve.oracle import (
    ConceptPrior,
    FairCeiling,
    NeighbourContext,
    concept_priors,
    fair_similarity,
    oracle_similarity,
)
from megdecode.metrics.retrieval import gallery, sim_scores
from megdecode.preprocessing.assemble import sensor_layout
from megdecode.seeds import derive_rng
from megdecode.simulate.eeg import (
    EegSimParams,
    eeg_gain,
    electrode_positions,
    neighbour_offsets,
    neighbour_probability,
)
from megdecode.simulate.params import SimulationParams
from megdecode.simulate.responses import trial_variables
from megdecode.simulate.subject import subject_anatomy

log = logging.getLogger(__name__)


def eeg_grid(recipe: Mapping[str, Any], p: EegSimParams) -> EpochGrid:
    """The recipe's window and rate (``things_eeg2.preprocessing``: tmin, tmax, resample_hz) with its number
    of samples (100 for -0.2 to 0.8 s at 100 Hz: the last one before tmax); the band from the recording's
    high-pass to the new Nyquist frequency."""
    rate, tmin = float(recipe["resample_hz"]), float(recipe["tmin"])
    n = int(round((float(recipe["tmax"]) - tmin) * rate))
    return EpochGrid(tmin, tmin + (n - 1) / rate, rate, p.l_freq, rate / 2)


def eeg_sensors(
    params: SimulationParams, p: EegSimParams, anatomy: dict, grid: EpochGrid, channel_regex: str
) -> SensorArray:
    """The subject's electrodes that ``channel_regex`` keeps (uV), referenced to the montage's average when
    ``p.average_reference``, with white electrode noise over the band."""
    head = anatomy["head"]
    r0, radius = np.asarray(head["sphere_r0"], float), float(head["head_radius"])
    positions = electrode_positions(p.montage, p.channels, r0, radius)
    gain = eeg_gain(positions, subject_dipoles(anatomy), r0, radius, p.average_reference)
    kept = p.picks(channel_regex)
    rows = [p.channels.index(c) for c in kept]
    return SensorArray(
        channels=kept,
        positions=sensor_layout(positions[rows]),
        gain=gain[rows],
        white_var=p.electrode_uv_rthz**2 * (grid.h_freq - grid.l_freq),
    )


class RsvpEpochSimulator(EpochSimulator):
    """One subject's EEG epochs in a rapid serial presentation (module docstring)."""

    def __init__(
        self,
        params: SimulationParams,
        truth: dict,
        table: pd.DataFrame,
        grid: EpochGrid,
        seed: int,
        subject: str,
        eeg: EegSimParams,
        channel_regex: str,
    ) -> None:
        sensors = eeg_sensors(params, eeg, subject_anatomy(params, seed, subject), grid, channel_regex)
        super().__init__(params, truth, table, grid, seed, subject, sensors)
        self.eeg = eeg
        comps = (params.early, params.late)
        response_s = max(max(c.latencies) + 5 * c.width for c in comps) + 5 * _max_jitter_sd(params)
        self.offsets = neighbour_offsets(eeg, grid.tmin, grid.tmax, response_s)

    def draw_rsvp(
        self,
        image_ids: Sequence[str],
        rngs: Sequence[np.random.Generator],
        pools: Sequence[np.ndarray],
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Epochs (n, channels, times) float32 and the trial variables, as :meth:`EpochSimulator.draw`, each
        epoch plus the responses to its neighbours: after the trial's own draws, its generator draws its
        position in its sequence, then each neighbour's image (from ``pools[k]``), gain and shifts."""
        epochs, variables = self.draw(image_ids, rngs)
        n_e, n_l = len(self.params.early.latencies), len(self.params.late.latencies)
        seq = self.eeg.sequence_length
        positions = np.empty(len(image_ids), dtype=int)
        shown = np.full((len(image_ids), len(self.offsets)), "", dtype=object)
        for k, (rng, pool) in enumerate(zip(rngs, pools, strict=True)):
            positions[k] = rng.integers(seq)
            images = rng.choice(np.asarray(pool, str), len(self.offsets))
            var = trial_variables(self.params, len(self.offsets), rng)
            for j, offset in enumerate(self.offsets):
                if not 0 <= positions[k] + offset < seq:
                    continue
                shown[k, j] = images[j]
                response = self._evoked(
                    images[j], var["early"][j, :n_e], var["late"][j, :n_l], float(offset * self.eeg.soa_s)
                )
                epochs[k] += (var["gain"][j] * response).astype(np.float32)
        variables.insert(1, "sequence_position", positions)
        for j, offset in enumerate(self.offsets):
            variables[f"image_at_{int(offset):+d}"] = shown[:, j]
        return epochs, variables

    def context_mean(self, pool: Sequence[str]) -> np.ndarray:
        """Expected response (channels, times) of a trial's neighbours drawn from ``pool``, at unit gain
        and no shift: each offset's pool-mean response weighted by the chance that the neighbour exists."""
        n_e, n_l = len(self.params.early.latencies), len(self.params.late.latencies)
        zero_e, zero_l = np.zeros(n_e), np.zeros(n_l)
        weights = neighbour_probability(self.eeg, self.offsets)
        out = np.zeros((len(self.channels), len(self.grid.times)))
        for w, offset in zip(weights, self.offsets, strict=True):
            onset = float(offset * self.eeg.soa_s)
            out += w * np.mean([self._evoked(i, zero_e, zero_l, onset) for i in pool], axis=0)
        return out

    def neighbour_context(self, pool_priors: Sequence[ConceptPrior]) -> NeighbourContext:
        """The fair ceiling's Gaussian model of the neighbours' summed response (unit gain, no shift) when
        each is drawn from a pool whose images' concepts have ``pool_priors`` (one per pool image): per
        offset ``j`` a neighbour exists with chance ``p_j`` and responds ``e_j + B_j z``, ``B_j`` the code
        responses shown ``j`` SOAs later and ``z`` its codes, drawn from the pool's mixture of priors with
        mean ``zbar`` and covariance ``S``. Mean ``sum_j p_j m_j`` with ``m_j = e_j + B_j zbar``; covariance
        ``sum_jk (Q_jk - p_j p_k) m_j m_k^T + sum_j p_j B_j S B_j^T``, ``Q`` the chance that two neighbours
        both exist (:func:`co_presence`): the mixture's exact first two moments."""
        coefs = np.stack([np.concatenate([p.early_mean, p.late_mean]) for p in pool_priors])
        spread = np.mean([_code_cov(p) for p in pool_priors], axis=0) + np.cov(coefs.T, bias=True)
        zbar = coefs.mean(axis=0)
        means, factors = [], []
        values, vectors = np.linalg.eigh(spread)
        root = vectors * np.sqrt(np.clip(values, 0, None))  # spread = root @ root.T
        prob = neighbour_probability(self.eeg, self.offsets)
        for w, offset in zip(prob, self.offsets, strict=True):
            evoked, early, late = self.code_responses(float(offset * self.eeg.soa_s))
            basis = np.concatenate([early, late])
            means.append(evoked + np.tensordot(zbar, basis, 1))
            factors.append(np.sqrt(w) * np.tensordot(root.T, basis, 1))
        m = np.stack(means) if means else np.zeros((0, len(self.channels), len(self.grid.times)))
        values, vectors = np.linalg.eigh(co_presence(self.eeg, self.offsets) - np.outer(prob, prob))
        presence = vectors * np.sqrt(np.clip(values, 0, None))
        factor = np.concatenate([np.tensordot(presence.T, m, 1), *factors])
        return NeighbourContext(np.tensordot(prob, m, 1), factor)


def _code_cov(p: ConceptPrior) -> np.ndarray:
    """Covariance of one concept's (early, late) codes under its prior."""
    n_late = len(p.late_mean)
    return np.block(
        [
            [p.early_cov, np.zeros((len(p.early_mean), n_late))],
            [np.zeros((n_late, len(p.early_mean))), p.late_var * np.eye(n_late)],
        ]
    )


def co_presence(p: EegSimParams, offsets: np.ndarray) -> np.ndarray:
    """(n, n) chance that a trial has neighbours at both offsets ``j`` and ``k`` (the diagonal is
    :func:`~megdecode.simulate.eeg.neighbour_probability`): its position in its sequence is uniform."""
    grid = np.stack(np.broadcast_arrays(offsets[:, None], offsets[None, :], 0))
    span = grid.max(axis=0) - grid.min(axis=0)
    return np.clip(p.sequence_length - span, 0, None) / p.sequence_length


def _max_jitter_sd(params: SimulationParams) -> float:
    if params.is_nonlinear:
        return max(params.nonlinear.early_jitter_sd, params.nonlinear.late_jitter_sd)
    return params.latency_jitter_sd


def neighbour_pools(design: Design, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The images that may stand beside a trial of each role in its sequence: training trials among the
    training-concept images outside the validation set (the same for every size), validation trials among
    the validation images, each test set among its own images."""
    exp = table[table["role"] == "exp"]
    train_concept = exp.loc[exp["concept_split"] == "train", "image_id"].to_numpy(str)
    return {
        TRAIN: np.setdiff1d(train_concept, design.val),
        VAL: np.unique(design.val),
        TEST_LARGE: np.unique(design.test_large),
        TEST_SMALL: np.unique(design.test_small),
    }


def run_eeg_job(
    study_truth: dict,
    table: pd.DataFrame,
    latents: Mapping[str, Latents],
    sim_cfg: Mapping[str, Any],
    eeg_cfg: Mapping[str, Any],
    recipe: Mapping[str, Any],
    lc: LearningCurveParams,
    brain_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    alphas: Sequence[float],
    job: Mapping[str, Any],
    seed: int,
    concept_renders: Mapping[str, np.ndarray],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-item retrieval scores of every EEG decoder at one size, and the trials' generating variables.

    ``job``: ``world``, ``subject``, ``replicate`` (seed wildcard), ``n_train``; ``eeg_cfg``: the
    ``eeg.simulation`` section; ``recipe``: ``tmin``, ``tmax``, ``resample_hz`` and ``channel_regex`` of
    ``things_eeg2.preprocessing``; ``concept_renders``: fresh renders' statistics per test concept, for the
    fair ceiling."""
    world, subject = job["world"], job["subject"]
    replicate, n_train = int(job["replicate"]), int(job["n_train"])
    torch.set_num_threads(lc.threads)
    params = dataclasses.replace(SimulationParams.from_config(sim_cfg), world=world)
    truth = world_truth(params, table, study_truth, seed)
    p = EegSimParams.from_config(eeg_cfg)
    grid = eeg_grid(recipe, p)
    key = (seed, "learning-curve", "eeg", world, subject, replicate)
    design = Design.draw(table, n_train, lc.n_val, lc.test_repeats, derive_rng(*key, "design"))
    trials = design.trials(table)
    pools = neighbour_pools(design, table)
    sim = RsvpEpochSimulator(params, truth, table, grid, seed, subject, p, str(recipe["channel_regex"]))
    tic = time.perf_counter()
    rngs = [derive_rng(*key, role, int(k)) for role, k in zip(trials["role"], trials["index"], strict=True)]
    epochs, variables = sim.draw_rsvp(trials["image_id"].tolist(), rngs, [pools[r] for r in trials["role"]])
    generating = pd.concat([trials, variables.drop(columns="image_id")], axis=1)
    where = f"EEG learning curve {world}/sub-{subject}/seed {replicate}/n={n_train}"
    log.info("%s: %d epochs drawn in %.1f s", where, len(trials), time.perf_counter() - tic)
    labels = dict(world=world, subject=subject, seed=replicate)
    rows = [_oracle_rows(sim, epochs, trials, pools, labels)]
    rows.append(_fair_ceiling_rows(sim, epochs, trials, table, pools, concept_renders, labels))
    rows += decoder_rows(
        epochs, trials, sim, latents, lc, brain_cfg, training_cfg, alphas, seed, f"eeg-{world}",
        {**labels, "n_train": n_train}, where,
    )  # fmt: skip
    return pd.concat(rows, ignore_index=True).assign(**{MODALITY: EEG}), generating


def _oracle_rows(
    sim: RsvpEpochSimulator,
    epochs: np.ndarray,
    trials: pd.DataFrame,
    pools: Mapping[str, np.ndarray],
    labels: Mapping[str, Any],
) -> pd.DataFrame:
    """The image oracle on the raw epochs minus the neighbours' expected response (the small set averaged)."""
    out = []
    for test_set in (TEST_SMALL, TEST_LARGE):
        x, ids, _ = _test_set_epochs(epochs, trials, test_set)
        gallery_ids, target = gallery(ids)
        context = sim.context_mean(pools[test_set])
        sim_matrix = oracle_similarity(sim.noise, x - context[None], sim.mean_responses(gallery_ids))
        scores = sim_scores(sim_matrix, target)
        out.append(
            _score_rows(scores, ids, **labels, n_train=0, backbone="", decoder=ORACLE, test_set=test_set)
        )
    return pd.concat(out, ignore_index=True)


def _fair_ceiling_rows(
    sim: RsvpEpochSimulator,
    epochs: np.ndarray,
    trials: pd.DataFrame,
    table: pd.DataFrame,
    pools: Mapping[str, np.ndarray],
    concept_renders: Mapping[str, np.ndarray],
    labels: Mapping[str, Any],
) -> pd.DataFrame:
    """The fair ceiling on the raw epochs (the small set averaged), the neighbours modelled by
    :meth:`RsvpEpochSimulator.neighbour_context` from the priors of their pool's concepts: the test images
    enter only as the scored epochs, their gallery and the concepts of the pool."""
    ceiling = FairCeiling(sim.noise, *sim.code_responses())
    concept_of = table.set_index("image_id")["concept"]
    out = []
    for test_set in (TEST_SMALL, TEST_LARGE):
        x, ids, repeats = _test_set_epochs(epochs, trials, test_set)
        gallery_ids, target = gallery(ids)
        pool = concept_of.loc[list(pools[test_set])].to_numpy(str)
        unique, index = np.unique(pool, return_inverse=True)
        priors = concept_priors(sim.truth, table, concept_renders, unique.tolist())
        context = sim.neighbour_context([priors[k] for k in index])
        sim_matrix = fair_similarity(
            ceiling, sim.truth, table, concept_renders, x, repeats, gallery_ids, context
        )
        scores = sim_scores(sim_matrix, target)
        out.append(
            _score_rows(scores, ids, **labels, n_train=0, backbone="", decoder=FAIR, test_set=test_set)
        )
    return pd.concat(out, ignore_index=True)


def eeg_curve_job(
    inputs: Mapping[str, Any],
    scores_path: Path | str,
    trials_path: Path | str,
    params: Mapping[str, Any],
    job: Mapping[str, Any],
) -> pd.DataFrame:
    """Rule ``learning_curve_eeg_job``: read the study's ``stimuli`` table, ``ground_truth``, ``latents`` and
    the test concepts' fresh renders, ``concept_renders`` (``inputs``), run :func:`run_eeg_job`, write the
    scores and the trials. ``params``: the rule's slices (``learning_curve``, ``simulation``, ``eeg``,
    ``recipe``, ``brain_module``, ``training``, ``alphas``, ``seed``)."""
    from megdecode.artifacts.learning_curve import read_concept_renders
    from megdecode.artifacts.sourcedata import read_ground_truth
    from megdecode.artifacts.stimuli import read_stimuli

    lc = LearningCurveParams.from_config(params["learning_curve"])
    truth, stimuli = read_ground_truth(inputs["ground_truth"]), read_stimuli(inputs["stimuli"])
    renders = read_concept_renders(inputs["concept_renders"])

    def run(latents: dict[str, Latents]) -> tuple[pd.DataFrame, pd.DataFrame]:
        return run_eeg_job(
            truth, stimuli, latents, params["simulation"], params["eeg"], params["recipe"], lc,
            params["brain_module"], params["training"], params["alphas"], job, int(params["seed"]), renders,
        )  # fmt: skip

    return run_and_write_job(run, inputs["latents"], lc.threads, scores_path, trials_path)
