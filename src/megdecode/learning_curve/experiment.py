"""One job of the learning curve: one world, one subject, one replicate seed, one training-set size.

The replicate seed draws everything that is random in an experiment: which images are shown (and in which
order they enter the nested training sets), the trials' gains, latency shifts and noise, the decoders'
initialisation and batch order. Images of the test concepts are shown only as test trials: training sets,
the validation set (early stopping, ridge alpha), the target and channel scaling never see them
(:func:`~megdecode.artifacts.splits.check_no_leakage` checks every size).

Decoders, per backbone and size: ridge on time bins of each ``ridge_time_bins`` (1 = full temporal
resolution), the brain module scored on its CLIP head, and two ceilings (:mod:`.oracle`; they train on
nothing: the same rows in every size's job of a replicate): the image oracle, which knows each test image's
noiseless response, and the fair ceiling, which knows only what can be learned from the training concepts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from megdecode.artifacts.latents import Latents
from megdecode.artifacts.predictions import RETRIEVAL_HEAD, TargetScaler
from megdecode.artifacts.preprocessed import SubjectData
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, TRAIN, VAL, check_no_leakage
from megdecode.config import dataclass_from_section
from megdecode.learning_curve.epochs import EpochGrid, EpochSimulator, baseline_correct
from megdecode.learning_curve.oracle import FairCeiling, fair_similarity, oracle_similarity
from megdecode.metrics.retrieval import gallery, item_scores, sim_scores
from megdecode.models import BrainModuleConfig
from megdecode.ridge import bin_time, fit_ridge
from megdecode.seeds import derive_rng, derive_seed
from megdecode.simulate.params import SimulationParams
from megdecode.simulate.stimuli import encoding_ground_truth
from megdecode.training.config import TrainingConfig
from megdecode.training.data import TrialSet
from megdecode.training.loop import TrainingRun, build_model, fit_epochs, predict

log = logging.getLogger(__name__)

ORACLE, FAIR, BRAIN = "oracle_image", "ceiling_fair", "brain"
CEILINGS = (ORACLE, FAIR)
SCORE_SETS = (VAL, TEST_SMALL, TEST_LARGE)


@dataclasses.dataclass(frozen=True)
class LearningCurveParams:
    """What one job of the ``learning_curve`` section does (defaults: learning_curve.schema.yaml;
    the keys that choose the jobs and the summary's statistics are not here)."""

    n_val: int
    min_train_samples: int
    test_repeats: int
    backbones: tuple[str, ...]
    ridge_time_bins: tuple[int, ...]
    threads: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> LearningCurveParams:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        return dataclass_from_section(cls, values, "learning_curve")


def ridge_name(time_bin: int) -> str:
    """Decoder label of ridge on bins of ``time_bin`` samples (``ridge_bin1``: full temporal resolution)."""
    return f"ridge_bin{int(time_bin)}"


def world_truth(params: SimulationParams, table: pd.DataFrame, study_truth: dict, seed: int) -> dict:
    """The ground truth of ``params.world`` for the study's images: the study's own when it was made for that
    world, else rebuilt from the same images' statistics with the same seed (same weights and codes)."""
    if study_truth.get("world", "linear") == params.world:
        return study_truth
    feats = np.array([study_truth["image_features"][i] for i in table["image_id"]])
    return encoding_ground_truth(params, table, feats, seed)


@dataclasses.dataclass(frozen=True)
class Design:
    """Which image each trial shows, by role: ``n_train`` training trials (the first ``n_train`` of one
    fixed image order, so the sets of one replicate are nested), validation, the large test set (one trial
    per image) and the small one (``test_repeats`` trials per image, in rounds)."""

    train: list[str]
    val: list[str]
    test_large: list[str]
    test_small: list[str]

    @classmethod
    def draw(
        cls, table: pd.DataFrame, n_train: int, n_val: int, test_repeats: int, rng: np.random.Generator
    ) -> Design:
        exp = table[table["role"] == "exp"]
        train_images = exp.loc[exp["concept_split"] == "train", "image_id"].to_numpy(str)
        if len(train_images) < n_train + n_val:
            raise ValueError(
                f"the learning curve needs {n_train + n_val} distinct training-concept images ({n_train} "
                f"training + {n_val} validation trials) but the stimuli table has {len(train_images)}; raise "
                "simulation.stimuli.n_train_concepts / exemplars_per_train_concept or lower "
                "learning_curve.train_sizes"
            )
        order = rng.permutation(train_images)
        small = sorted(table.loc[table["role"] == "test", "image_id"].astype(str))
        return cls(
            train=order[n_val : n_val + n_train].tolist(),
            val=order[:n_val].tolist(),
            test_large=sorted(exp.loc[exp["concept_split"] == "test", "image_id"].astype(str)),
            test_small=small * test_repeats,
        )

    def trials(self, table: pd.DataFrame) -> pd.DataFrame:
        """One row per simulated trial, in simulation order: image_id, concept, role, and ``index`` (the
        trial's position within its role, which keys its random draws)."""
        roles = [(TRAIN, self.train), (VAL, self.val), (TEST_LARGE, self.test_large)]
        roles.append((TEST_SMALL, self.test_small))
        ids = [i for _, part in roles for i in part]
        concept = table.set_index("image_id").loc[ids, "concept"].to_numpy(str)
        role = [r for r, part in roles for _ in part]
        index = [k for _, part in roles for k in range(len(part))]
        return pd.DataFrame({"image_id": ids, "concept": concept, "role": role, "index": index})


def _subject_data(epochs: np.ndarray, trials: pd.DataFrame, sim: EpochSimulator, name: str) -> SubjectData:
    positions = np.asarray(sim.positions, np.float32)
    return SubjectData(name, epochs, trials, list(sim.channels), positions, {}, Path("<learning-curve>"))


def _score_rows(scores: Mapping[str, np.ndarray], image_ids: Sequence[str], **labels: Any) -> pd.DataFrame:
    return pd.DataFrame({**labels, "image_id": list(image_ids), **scores})


def run_job(
    study_truth: dict,
    table: pd.DataFrame,
    latents: Mapping[str, Latents],
    sim_cfg: Mapping[str, Any],
    grid: EpochGrid,
    lc: LearningCurveParams,
    brain_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    alphas: Sequence[float],
    job: Mapping[str, Any],
    seed: int,
    concept_renders: Mapping[str, np.ndarray],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-item retrieval scores of every decoder at one size, and the trials' generating variables.

    ``job``: ``world``, ``subject``, ``replicate`` (seed wildcard) and ``n_train``. Every trial is drawn from
    its own generator keyed by (replicate, role, position), so the trials of one replicate are the same in
    every size's job: training sets are nested, validation and test trials shared. ``concept_renders``:
    fresh renders' statistics per test concept, for the fair ceiling."""
    world, subject, replicate, n_train = (
        job["world"],
        job["subject"],
        int(job["replicate"]),
        int(job["n_train"]),
    )
    torch.set_num_threads(lc.threads)
    params = dataclasses.replace(SimulationParams.from_config(sim_cfg), world=world)
    truth = world_truth(params, table, study_truth, seed)
    key = (seed, "learning-curve", world, subject, replicate)
    design = Design.draw(table, n_train, lc.n_val, lc.test_repeats, derive_rng(*key, "design"))
    trials = design.trials(table)
    sim = EpochSimulator(params, truth, table, grid, seed, subject)
    tic = time.perf_counter()
    rngs = [derive_rng(*key, role, int(k)) for role, k in zip(trials["role"], trials["index"], strict=True)]
    epochs, variables = sim.draw(trials["image_id"].tolist(), rngs)
    generating = pd.concat([trials, variables.drop(columns="image_id")], axis=1)
    log.info(
        "%s world, sub-%s, replicate %d, n=%d: %d epochs drawn in %.1f s",
        world,
        subject,
        replicate,
        n_train,
        len(trials),
        time.perf_counter() - tic,
    )
    labels = dict(world=world, subject=subject, seed=replicate)
    rows = [_oracle_rows(sim, epochs, trials, labels)]
    rows.append(_fair_ceiling_rows(sim, epochs, trials, table, concept_renders, labels))
    where = f"learning curve {world}/sub-{subject}/seed {replicate}/n={n_train}"
    size_labels = {**labels, "n_train": n_train}
    rows += decoder_rows(
        epochs, trials, sim, latents, lc, brain_cfg, training_cfg, alphas, seed, world, size_labels, where
    )  # fmt: skip
    return pd.concat(rows, ignore_index=True), generating


def decoder_rows(
    epochs: np.ndarray,
    trials: pd.DataFrame,
    sim: EpochSimulator,
    latents: Mapping[str, Latents],
    lc: LearningCurveParams,
    brain_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    alphas: Sequence[float],
    seed: int,
    model_key: str,
    labels: Mapping[str, Any],
    where: str,
) -> list[pd.DataFrame]:
    """Score rows of ridge and the brain module for every backbone, from the drawn ``epochs`` (modified in
    place) of ``trials`` (roles in :meth:`Design.trials` order). Their inputs: baseline-corrected, the small
    set averaged over its repetitions, each channel divided by its SD over the training trials.
    ``model_key`` keys the brain module's initialisation; ``labels``: world, subject, seed and n_train."""
    baseline_correct(epochs, sim.grid.times)
    epochs, trials = _average_small_set(epochs, trials)
    trials = trials.assign(split=trials["role"])
    check_no_leakage(trials, where)
    train_rows = np.flatnonzero(trials["split"].to_numpy(str) == TRAIN)
    epochs /= epochs[train_rows].std(axis=(0, 2))[None, :, None].astype(np.float32)
    subject_data = _subject_data(epochs, trials, sim, str(labels["subject"]))
    rows: list[pd.DataFrame] = []
    for backbone in lc.backbones:
        tic = time.perf_counter()
        size_labels = {**labels, "backbone": backbone}
        rows += _ridge_rows(epochs, trials, latents[backbone], lc, alphas, size_labels)
        rows += _brain_rows(
            subject_data,
            latents[backbone],
            lc.min_train_samples,
            brain_cfg,
            training_cfg,
            seed,
            model_key,
            int(labels["seed"]),
            size_labels,
        )
        log.info("n=%d %s: ridge + brain in %.1f s", labels["n_train"], backbone, time.perf_counter() - tic)
    return rows


def _average_small_set(epochs: np.ndarray, trials: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Replace the small set's repeated trials (the last rows) by their per-image average, as the workflow's
    preprocessing does; returns a view of ``epochs`` (no copy) and the matching trials."""
    small = np.flatnonzero(trials["role"].to_numpy(str) == TEST_SMALL)
    if not np.array_equal(small, np.arange(len(trials) - len(small), len(trials))):
        raise ValueError("the small test set's trials must come last")
    ids = trials["image_id"].to_numpy(str)[small]
    unique = np.unique(ids)
    averaged = np.stack([epochs[small[ids == i]].mean(axis=0) for i in unique])
    first = small[0] if len(small) else len(trials)
    epochs[first : first + len(unique)] = averaged
    kept = trials.iloc[:first][["image_id", "concept", "role"]]
    concepts = trials.iloc[small].drop_duplicates("image_id").set_index("image_id").loc[unique, "concept"]
    averaged_rows = pd.DataFrame({"image_id": unique, "concept": concepts.to_numpy(str), "role": TEST_SMALL})
    return epochs[: first + len(unique)], pd.concat([kept, averaged_rows], ignore_index=True)


def _test_set_epochs(
    epochs: np.ndarray, trials: pd.DataFrame, test_set: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """A test set's raw epochs (the small set averaged over its repetitions), their image ids and how many
    trials each averages."""
    rows = np.flatnonzero(trials["role"].to_numpy(str) == test_set)
    ids = trials["image_id"].to_numpy(str)[rows]
    if test_set != TEST_SMALL:
        return epochs[rows], ids, 1
    gallery_ids, _ = gallery(ids)
    repeats = {int((ids == i).sum()) for i in gallery_ids}
    if len(repeats) != 1:
        raise ValueError(f"small-set images are repeated unequally often: {sorted(repeats)}")
    return np.stack([epochs[rows[ids == i]].mean(axis=0) for i in gallery_ids]), gallery_ids, repeats.pop()


def _oracle_rows(
    sim: EpochSimulator, epochs: np.ndarray, trials: pd.DataFrame, labels: Mapping[str, Any]
) -> pd.DataFrame:
    """The image oracle on the raw epochs (the small set averaged over its repetitions)."""
    out = []
    for test_set in (TEST_SMALL, TEST_LARGE):
        x, ids, _ = _test_set_epochs(epochs, trials, test_set)
        gallery_ids, target = gallery(ids)
        sim_matrix = oracle_similarity(sim.noise, x, sim.mean_responses(gallery_ids))
        scores = sim_scores(sim_matrix, target)
        out.append(
            _score_rows(scores, ids, **labels, n_train=0, backbone="", decoder=ORACLE, test_set=test_set)
        )
    return pd.concat(out, ignore_index=True)


def _fair_ceiling_rows(
    sim: EpochSimulator,
    epochs: np.ndarray,
    trials: pd.DataFrame,
    table: pd.DataFrame,
    concept_renders: Mapping[str, np.ndarray],
    labels: Mapping[str, Any],
) -> pd.DataFrame:
    """The fair ceiling on the raw epochs (the small set averaged over its repetitions): the test images
    enter only as the scored epochs and their gallery."""
    ceiling = FairCeiling(sim.noise, *sim.code_responses())
    out = []
    for test_set in (TEST_SMALL, TEST_LARGE):
        x, ids, repeats = _test_set_epochs(epochs, trials, test_set)
        gallery_ids, target = gallery(ids)
        sim_matrix = fair_similarity(ceiling, sim.truth, table, concept_renders, x, repeats, gallery_ids)
        scores = sim_scores(sim_matrix, target)
        out.append(
            _score_rows(scores, ids, **labels, n_train=0, backbone="", decoder=FAIR, test_set=test_set)
        )
    return pd.concat(out, ignore_index=True)


def _split_rows(trials: pd.DataFrame, name: str) -> np.ndarray:
    return np.flatnonzero(trials["split"].to_numpy(str) == name)


def _candidates(latents: Latents, scaler: TargetScaler, image_ids: Sequence[str]) -> np.ndarray:
    gallery_ids, _ = gallery(image_ids)
    return scaler.transform(latents.values[latents.rows(gallery_ids)])


def _ridge_rows(
    epochs: np.ndarray,
    trials: pd.DataFrame,
    latents: Latents,
    lc: LearningCurveParams,
    alphas: Sequence[float],
    labels: Mapping[str, Any],
) -> list[pd.DataFrame]:
    ids = trials["image_id"].to_numpy(str)
    scaler = TargetScaler.fit(latents, ids[_split_rows(trials, TRAIN)])
    targets = {
        name: scaler.transform(latents.values[latents.rows(ids[_split_rows(trials, name)])])
        for name in (TRAIN, VAL)
    }
    out = []
    for time_bin in lc.ridge_time_bins:
        x_va = bin_time(epochs, _split_rows(trials, VAL), time_bin)
        model = fit_ridge(
            bin_time(epochs, _split_rows(trials, TRAIN), time_bin), targets[TRAIN], alphas, x_va, targets[VAL]
        )
        for test_set in SCORE_SETS:
            rows = _split_rows(trials, test_set)
            pred = model.predict(x_va if test_set == VAL else bin_time(epochs, rows, time_bin))
            scores = item_scores(pred, ids[rows], _candidates(latents, scaler, ids[rows]))
            out.append(
                _score_rows(scores, ids[rows], **labels, decoder=ridge_name(time_bin), test_set=test_set)
            )
    return out


def max_epochs(training_max_epochs: int, min_train_samples: int, n_train: int) -> int:
    """The epoch cap of a brain module trained on ``n_train`` trials: ``training.max_epochs``, raised so that
    it can see at least ``min_train_samples`` training samples (small sets get as many gradient steps as a
    larger one would in the same cap); early stopping on validation still ends training when it stops
    improving."""
    return max(int(training_max_epochs), -(-int(min_train_samples) // int(n_train)))


def _brain_rows(
    subject: SubjectData,
    latents: Latents,
    min_train_samples: int,
    brain_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    seed: int,
    world: str,
    replicate: int,
    labels: Mapping[str, Any],
) -> list[pd.DataFrame]:
    """Train the brain module on this size's training set (early stopping on val) and score its CLIP head."""
    bcfg, cfg = BrainModuleConfig.from_dict(brain_cfg), TrainingConfig.from_dict(training_cfg)
    cfg = dataclasses.replace(
        cfg, max_epochs=max_epochs(cfg.max_epochs, min_train_samples, labels["n_train"])
    )
    device = torch.device("cpu")
    trials = subject.trials
    ids = trials["image_id"].to_numpy(str)
    scaler = TargetScaler.fit(latents, ids[_split_rows(trials, TRAIN)])
    sets = {s: TrialSet([subject], s, subject.channels, latents, scaler) for s in (TRAIN, *SCORE_SETS)}
    model_seed = derive_seed(
        seed, "learning-curve", "brain", world, subject.name, replicate, labels["n_train"]
    )
    model = build_model(bcfg, cfg, subject.positions, 1, subject.meg.shape[2], latents.shape, model_seed)
    run = TrainingRun.start(model, cfg, model_seed)
    best = fit_epochs(model, sets[TRAIN], sets[VAL], cfg, device, run, progress=False, monitor_top5=False)
    history, stopper = run.history, run.stopper
    model.load_state_dict(best)
    log.info("brain n=%d: %d epochs, best %d", labels["n_train"], len(history), stopper.best_epoch)
    out = []
    for test_set in SCORE_SETS:
        data = sets[test_set]
        pred = predict(model, data, device)[RETRIEVAL_HEAD]
        scores = item_scores(pred, data.image_ids, _candidates(latents, scaler, data.image_ids))
        out.append(
            _score_rows(scores, data.image_ids, **labels, decoder=BRAIN, test_set=test_set).assign(
                epochs=len(history), best_epoch=stopper.best_epoch
            )
        )
    return out


def learning_curve_job(
    inputs: Mapping[str, Any],
    scores_path: Path | str,
    trials_path: Path | str,
    params: Mapping[str, Any],
    job: Mapping[str, Any],
) -> pd.DataFrame:
    """Rule ``learning_curve_job``: read its ``inputs`` (the study's ``stimuli`` table, ``ground_truth``,
    ``latents`` and the test concepts' fresh renders, ``concept_renders``), run :func:`run_job`, write both
    tables. ``params``: the rule's slices (``learning_curve``, ``simulation``, ``epochs``, ``brain_module``,
    ``training``, ``alphas``, ``seed``); ``job``: see :func:`run_job`."""
    from megdecode.artifacts.learning_curve import read_concept_renders
    from megdecode.artifacts.sourcedata import read_ground_truth
    from megdecode.artifacts.stimuli import read_stimuli

    lc = LearningCurveParams.from_config(params["learning_curve"])
    truth, stimuli = read_ground_truth(inputs["ground_truth"]), read_stimuli(inputs["stimuli"])
    renders = read_concept_renders(inputs["concept_renders"])

    def run(latents: dict[str, Latents]) -> tuple[pd.DataFrame, pd.DataFrame]:
        epochs = EpochGrid(**params["epochs"])
        return run_job(
            truth, stimuli, latents, params["simulation"], epochs, lc, params["brain_module"],
            params["training"], params["alphas"], job, int(params["seed"]), renders,
        )  # fmt: skip

    return run_and_write_job(run, inputs["latents"], lc.threads, scores_path, trials_path)


def run_and_write_job(
    run: Callable[[dict[str, Latents]], tuple[pd.DataFrame, pd.DataFrame]],
    latents_files: Sequence[Path | str],
    threads: int,
    scores_path: Path | str,
    trials_path: Path | str,
) -> pd.DataFrame:
    """What a learning-curve job of either modality does around its decoders: read the latents (each
    backbone's ``latents.npy``, named by its folder), ``run`` them under ``threads`` BLAS threads, write
    the trials and the scores; returns the scores."""
    from threadpoolctl import threadpool_limits

    from megdecode.artifacts.latents import read_latents
    from megdecode.artifacts.learning_curve import write_scores, write_trials

    latents = {Path(p).parent.name: read_latents(Path(p).parent) for p in latents_files}
    with threadpool_limits(limits=threads):
        scores, trials = run(latents)
    write_trials(trials, trials_path)
    write_scores(scores, scores_path)
    return scores
