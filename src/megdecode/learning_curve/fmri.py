"""The fMRI learning curve: the simulated 7T study's decoders as training trials per subject grow.

The same experiment as the MEG curve (:mod:`.experiment`) on the simulated 7T fMRI study
(:mod:`megdecode.simulate.fmri`, parameters ``fmri.simulation``, unchanged):

- **Voxels** (one job per subject, :func:`voxel_code_job`): the subject's world (its voxels' read-out of the
  latent representation, gains and noise model) and their noiseless signal for every image the curve can show,
  drawn by :func:`megdecode.simulate.fmri.voxel_code` with its own seed (the subject's "brain": the same in
  every replicate and size, as the MEG subject's anatomy).
- **Design**: the MEG curve's :class:`~.experiment.Design`: ``n_train`` training trials (one image each,
  nested: the first ``n_train`` of one image order per replicate), validation trials, the large test set
  (every image of the test concepts once) and the small one (the test images ``test_repeats`` times,
  averaged).
- **Trials**: each drawn from its own generator keyed by (replicate, role, position), as for MEG: its session
  (uniform over ``n_sessions``) and its noise (the simulator's :class:`~megdecode.simulate.fmri.NoiseModel`:
  neural noise where the signal lives, then the measurement noise), then the session's per-voxel gain and
  offset (drawn per replicate and session). A replicate's trials are therefore the same in every size's job.
- **Decoders** (the fMRI stage's): each voxel z-scored per session with that session's training and validation
  trials (:func:`~megdecode.artifacts.fmri.zscore_per_session`), targets standardised on the training images;
  ridge (``fmri.ridge.alphas``, alpha on validation) and the voxel MLP (``fmri.mlp``, ``fmri.mlp_training``,
  CLIP + MSE, early stopping on validation, epoch cap raised for small sets as the brain module's) scored on
  its CLIP head; and an image oracle (decoder ``oracle_image``, as MEG's) that knows the generative model (the
  session gains and offsets, the noiseless signal of every test image, each concept's own code included, and
  the noise covariance): the Mahalanobis distance of each de-sessioned trial to every gallery image's
  noiseless response (above the fair ceiling of :mod:`megdecode.evaluation.fmri_ceiling`).
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

from megdecode.artifacts.fmri import TEST, zscore_per_session
from megdecode.artifacts.latents import Latents
from megdecode.artifacts.learning_curve import FMRI, MODALITY
from megdecode.artifacts.predictions import RETRIEVAL_HEAD, TargetScaler
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, TRAIN, VAL, check_no_leakage
from megdecode.config import dataclass_from_section
from megdecode.learning_curve.experiment import ORACLE, SCORE_SETS, Design, max_epochs, run_and_write_job
from megdecode.metrics.retrieval import gallery, item_scores, sim_scores
from megdecode.ridge import fit_ridge
from megdecode.seeds import derive_rng, derive_seed
from megdecode.simulate.fmri import FmriSimParams, NoiseModel, images_voxel_code
from megdecode.simulate.fmri_observer import LowRankGaussian

log = logging.getLogger(__name__)

WORLD = "7T"  # the ``world`` of the fMRI rows: the simulated 7T study's generative model
RIDGE, MLP = "ridge", "mlp"  # the fMRI stage's decoder names
TEST_ROLES = (TEST_LARGE, TEST_SMALL)


@dataclasses.dataclass(frozen=True)
class FmriCurveParams:
    """What one fMRI job uses of the ``learning_curve`` section (defaults: learning_curve.schema.yaml)."""

    n_val: int
    min_train_samples: int
    test_repeats: int
    backbones: tuple[str, ...]
    threads: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> FmriCurveParams:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        return dataclass_from_section(cls, values, "learning_curve")


def curve_images(table: pd.DataFrame) -> np.ndarray:
    """Every image the curve can show (the ``exp`` and ``test`` roles), sorted."""
    return np.sort(table.loc[table["role"].isin(["exp", "test"]), "image_id"].to_numpy(str))


def draw_voxel_code(
    table: pd.DataFrame, images_root: Path | str, subject: str, cfg: Mapping[str, Any], seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One subject's voxel code for :func:`curve_images` (arrays of
    :data:`~megdecode.artifacts.learning_curve.VOXEL_ARRAYS`) and its ground truth."""
    p = FmriSimParams.from_dict(cfg)
    ids = curve_images(table)
    code = images_voxel_code(table, ids, images_root, p, (int(seed), "learning-curve", "fmri", subject))
    truth = {
        "subject": subject,
        "seed": int(seed),
        "params": dataclasses.asdict(p),
        "roi": code.roi.tolist(),
        "gain": code.snr.round(6).tolist(),
        "ncsnr": code.ncsnr.round(6).tolist(),
        "prf": {k: np.asarray(v).round(6).tolist() for k, v in code.prf.items()},
        **code.truth,
    }
    arrays = {
        "image_ids": ids,
        "signal": code.signal.astype(np.float32),
        "snr": code.snr,
        "noise_loadings": code.noise.loadings.astype(np.float32),
        "noise_white": np.asarray(code.noise.white),
    }
    return arrays, truth


def noise_model(code: Mapping[str, np.ndarray]) -> NoiseModel:
    """The simulator's noise model of a voxel-code file."""
    return NoiseModel(np.asarray(code["noise_loadings"], np.float64), float(code["noise_white"]))


@dataclasses.dataclass(frozen=True)
class Sessions:
    """One replicate's per-session, per-voxel gains and offsets (the simulator's session effects)."""

    gain: np.ndarray  # (sessions, voxels)
    offset: np.ndarray  # (sessions, voxels)

    @classmethod
    def draw(cls, p: FmriSimParams, n_voxels: int, key: tuple) -> Sessions:
        gains, offsets = [], []
        for s in range(p.n_sessions):
            rng = derive_rng(*key, "session", s)
            gains.append(np.exp(p.session_gain * rng.normal(size=n_voxels)))
            offsets.append(p.session_offset * rng.normal(size=n_voxels))
        return cls(np.stack(gains), np.stack(offsets))


def draw_betas(
    responses: np.ndarray,
    sessions: Sessions,
    p: FmriSimParams,
    noise: NoiseModel,
    rngs: Sequence[np.random.Generator],
) -> tuple[np.ndarray, np.ndarray]:
    """Single-trial betas (trials, voxels) float32 and each trial's session index: ``(response + noise) *
    gain[session] + offset[session]``; trial ``i`` draws its session and noise from ``rngs[i]`` only."""
    n, v = responses.shape
    session = np.empty(n, dtype=np.int64)
    drawn = np.empty((n, v))
    for i, rng in enumerate(rngs):
        session[i] = rng.integers(0, p.n_sessions)
        drawn[i] = noise.draw(1, rng)[0]
    betas = (responses + drawn) * sessions.gain[session] + sessions.offset[session]
    return betas.astype(np.float32), session


def code_rows(code_ids: np.ndarray, image_ids: np.ndarray, where: str) -> np.ndarray:
    """Rows of ``image_ids`` in the (sorted) voxel code; an error names the job to rerun if one is missing."""
    rows = np.minimum(np.searchsorted(code_ids, image_ids), len(code_ids) - 1)
    missing = sorted(set(image_ids[code_ids[rows] != image_ids]))
    if missing:
        raise ValueError(
            f"{where}: images {missing[:5]} are not in the subject's voxel code; rerun "
            "learning_curve_fmri_voxels (the stimuli changed)"
        )
    return rows


def _score_rows(scores: Mapping[str, np.ndarray], image_ids: Sequence[str], **labels: Any) -> pd.DataFrame:
    return pd.DataFrame({MODALITY: FMRI, "world": WORLD, **labels, "image_id": list(image_ids), **scores})


def _average(x: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the same image averaged, images sorted."""
    unique = np.unique(ids)
    return np.stack([x[ids == i].mean(axis=0) for i in unique]), unique


def decoder_inputs(
    betas: np.ndarray, trials: pd.DataFrame
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Z-scored voxels and image ids per scored set: each voxel z-scored per session with that session's
    training and validation trials; the small test set averaged over its repetitions after z-scoring."""
    role = trials["role"].to_numpy(str)
    split = np.where(np.isin(role, TEST_ROLES), TEST, role)
    z = zscore_per_session(betas, trials.assign(split=split, session=trials["session"].astype(str)))
    ids = trials["image_id"].to_numpy(str)
    x = {r: z[role == r] for r in (TRAIN, VAL, TEST_LARGE)}
    image_ids = {r: ids[role == r] for r in (TRAIN, VAL, TEST_LARGE)}
    x[TEST_SMALL], image_ids[TEST_SMALL] = _average(z[role == TEST_SMALL], ids[role == TEST_SMALL])
    return x, image_ids


def run_fmri_job(
    table: pd.DataFrame,
    code: Mapping[str, np.ndarray],
    latents: Mapping[str, Latents],
    lc: FmriCurveParams,
    fmri_cfg: Mapping[str, Any],
    job: Mapping[str, Any],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-item retrieval scores of the fMRI decoders at one size, and the trials' design.

    ``code``: the subject's :func:`draw_voxel_code` arrays; ``job``: ``subject``, ``replicate`` (seed
    wildcard), ``n_train``; ``fmri_cfg``: the ``fmri`` section's ``simulation``, ``ridge``, ``mlp`` and
    ``mlp_training``."""
    subject, replicate, n_train = job["subject"], int(job["replicate"]), int(job["n_train"])
    torch.set_num_threads(lc.threads)
    p = FmriSimParams.from_dict(fmri_cfg["simulation"])
    key = (seed, "learning-curve", "fmri", subject, replicate)
    design = Design.draw(table, n_train, lc.n_val, lc.test_repeats, derive_rng(*key, "design"))
    trials = design.trials(table)
    where = f"fMRI learning curve sub-{subject}/seed {replicate}/n={n_train}"
    check_no_leakage(trials.assign(split=trials["role"]), where)
    tic = time.perf_counter()
    rows_of = code_rows(code["image_ids"], trials["image_id"].to_numpy(str), where)
    response = code["signal"].astype(np.float64) * code["snr"]
    sessions = Sessions.draw(p, response.shape[1], key)
    rngs = [derive_rng(*key, role, int(k)) for role, k in zip(trials["role"], trials["index"], strict=True)]
    betas, session = draw_betas(response[rows_of], sessions, p, noise_model(code), rngs)
    trials = trials.assign(session=[f"{s + 1:02d}" for s in session])
    log.info("%s: %d trials drawn in %.1f s", where, len(trials), time.perf_counter() - tic)
    labels = dict(subject=subject, seed=replicate)
    out = [_oracle_rows(betas, session, trials, sessions, code, response, p, labels)]
    x, image_ids = decoder_inputs(betas, trials)
    for backbone in lc.backbones:
        tic = time.perf_counter()
        lat = latents[backbone]
        scaler = TargetScaler.fit(lat, image_ids[TRAIN])
        targets = {s: scaler.transform(lat.values[lat.rows(image_ids[s])]) for s in (TRAIN, *SCORE_SETS)}
        candidates = {s: scaler.transform(lat.values[lat.rows(gallery(image_ids[s])[0])]) for s in SCORE_SETS}
        size_labels = {**labels, "n_train": n_train, "backbone": backbone}
        model = fit_ridge(x[TRAIN], targets[TRAIN], fmri_cfg["ridge"]["alphas"], x[VAL], targets[VAL])
        for s in SCORE_SETS:
            scores = item_scores(model.predict(x[s]), image_ids[s], candidates[s])
            out.append(_score_rows(scores, image_ids[s], **size_labels, decoder=RIDGE, test_set=s))
        mlp_seed = derive_seed(*key, "mlp", backbone, n_train)
        preds, epochs, best_epoch = fit_voxel_mlp(x, targets, image_ids, lat.shape, lc, fmri_cfg, mlp_seed)
        for s in SCORE_SETS:
            scores = item_scores(preds[s], image_ids[s], candidates[s])
            out.append(
                _score_rows(scores, image_ids[s], **size_labels, decoder=MLP, test_set=s).assign(
                    epochs=epochs, best_epoch=best_epoch
                )
            )
        log.info(
            "n=%d %s: ridge (alpha %g) + MLP in %.1f s",
            n_train,
            backbone,
            model.alpha,
            time.perf_counter() - tic,
        )
    return pd.concat(out, ignore_index=True), trials


def fit_voxel_mlp(
    x: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    image_ids: Mapping[str, np.ndarray],
    latent_shape: tuple[int, ...],
    lc: FmriCurveParams,
    fmri_cfg: Mapping[str, Any],
    seed: int,
) -> tuple[dict[str, np.ndarray], int, int]:
    """Train the voxel MLP (CLIP + MSE, early stopping on val) and predict every scored set with its CLIP
    head; returns the predictions, the epochs run and the best epoch."""
    from megdecode.models.voxel_mlp import VoxelMLP, VoxelMLPConfig
    from megdecode.training.config import TrainingConfig
    from megdecode.training.fmri_mlp import VoxelSet
    from megdecode.training.loop import BrainWithTemperature, TrainingRun, fit_epochs, predict

    mcfg, cfg = VoxelMLPConfig.from_dict(fmri_cfg["mlp"]), TrainingConfig.from_dict(fmri_cfg["mlp_training"])
    cfg = dataclasses.replace(
        cfg, max_epochs=max_epochs(cfg.max_epochs, lc.min_train_samples, len(x[TRAIN])), device="cpu"
    )
    device = torch.device("cpu")
    sets = {s: VoxelSet(x[s], targets[s], image_ids[s]) for s in (TRAIN, *SCORE_SETS)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VoxelMLP(mcfg, x[TRAIN].shape[1], latent_shape)
        model = BrainWithTemperature(net, cfg.temperature_init, cfg.learn_temperature).to(device)
        run = TrainingRun.start(model, cfg, seed)
        best = fit_epochs(model, sets[TRAIN], sets[VAL], cfg, device, run, progress=False, monitor_top5=False)
        model.load_state_dict(best)
        preds = {s: predict(model, sets[s], device)[RETRIEVAL_HEAD] for s in SCORE_SETS}
    return preds, len(run.history), int(run.stopper.best_epoch)


def _oracle_rows(
    betas: np.ndarray,
    session: np.ndarray,
    trials: pd.DataFrame,
    sessions: Sessions,
    code: Mapping[str, np.ndarray],
    response: np.ndarray,
    p: FmriSimParams,
    labels: Mapping[str, Any],
) -> pd.DataFrame:
    """The oracle on the betas with each trial's session gain and offset removed (the small set averaged)."""
    clean = (betas - sessions.offset[session]) / sessions.gain[session]
    role, ids = trials["role"].to_numpy(str), trials["image_id"].to_numpy(str)
    out = []
    for test_set in TEST_ROLES:
        rows = role == test_set
        x, item_ids = (clean[rows], ids[rows]) if test_set == TEST_LARGE else _average(clean[rows], ids[rows])
        gallery_ids, target = gallery(item_ids)
        means = response[code_rows(code["image_ids"], gallery_ids, "oracle")]
        noise = noise_model(code)
        cov = LowRankGaussian(
            noise.loadings, noise.white
        )  # an average of r trials: covariance / r, same ranking
        scores = sim_scores(-cov.mahalanobis(x, means), target)
        out.append(
            _score_rows(scores, item_ids, **labels, n_train=0, backbone="", decoder=ORACLE, test_set=test_set)
        )
    return pd.concat(out, ignore_index=True)


def voxel_code_job(
    stimuli_table: Path | str,
    images_root: Path | str,
    subject: str,
    simulation_cfg: Mapping[str, Any],
    seed: int,
    code_path: Path | str,
    truth_path: Path | str,
) -> None:
    """Rule ``learning_curve_fmri_voxels``: draw and write one subject's voxel code and ground truth."""
    from megdecode.artifacts.learning_curve import write_voxel_code
    from megdecode.artifacts.stimuli import read_stimuli

    arrays, truth = draw_voxel_code(read_stimuli(stimuli_table), images_root, subject, simulation_cfg, seed)
    write_voxel_code(arrays, truth, code_path, truth_path)


def fmri_curve_job(
    inputs: Mapping[str, Any],
    scores_path: Path | str,
    trials_path: Path | str,
    params: Mapping[str, Any],
    job: Mapping[str, Any],
) -> pd.DataFrame:
    """Rule ``learning_curve_fmri_job``: read the ``stimuli`` table, the voxel ``code`` and the ``latents``
    files (``inputs``), run :func:`run_fmri_job`, write the scores and the trials. ``params``:
    ``learning_curve``, ``fmri`` (the slices of :func:`run_fmri_job`) and ``seed``."""
    from megdecode.artifacts.learning_curve import read_voxel_code
    from megdecode.artifacts.stimuli import read_stimuli

    lc = FmriCurveParams.from_config(params["learning_curve"])
    stimuli, code = read_stimuli(inputs["stimuli"]), read_voxel_code(inputs["code"])

    def run(latents: dict[str, Latents]) -> tuple[pd.DataFrame, pd.DataFrame]:
        return run_fmri_job(stimuli, code, latents, lc, params["fmri"], job, int(params["seed"]))

    return run_and_write_job(run, inputs["latents"], lc.threads, scores_path, trials_path)
