"""The recipe study: which training choices let the brain module show what it does (docs/recipe-study.md).

A preregistered grid (``recipe_study`` config section, ``config/recipe-study.yaml``) on a THINGS-shaped
simulated study: the training set grows by concepts (every training concept contributes
``exemplars_per_concept`` images, as THINGS-MEG's 12), and recipe *variants* of the brain module differ in
their validation type (``trials``: unseen exemplars of the training concepts, the paper's; ``concepts``:
held-out training concepts, which generalise the way the test sets do), early-stopping criterion, width,
learning rate and whether one model is shared by the subjects. Ridge is fitted per unit and validation type
and pairs with the variants of that type.

Jobs (rules/recipe_study.smk): per (world, subject, seed, size, validation type) ridge; per
(world, subject, seed, size, variant) the brain module, or per (world, seed, size, variant) for a shared one;
per variant with candidate settings one selection job that chooses them on a *selection* set of held-out
training concepts (disjoint from the training, validation and test concepts) of one unit, so that the choice
never sees the validation set that picked each candidate's epoch, nor any test image.

Every trial is drawn from its own generator keyed by (world, subject, replicate, image, repetition), so a
trial is the same in every job: training sets are nested across sizes and shared by variants; test trials are
shared by everything.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
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
from megdecode.learning_curve.experiment import (
    _average_small_set,
    _candidates,
    _fair_ceiling_rows,
    _oracle_rows,
    _ridge_rows,
    _score_rows,
    _subject_data,
    max_epochs,
    world_truth,
)
from megdecode.metrics.retrieval import item_scores
from megdecode.models import BrainModuleConfig
from megdecode.seeds import derive_rng, derive_seed
from megdecode.simulate.params import SimulationParams
from megdecode.training.config import TrainingConfig
from megdecode.training.data import TrialSet, union_channels
from megdecode.training.loop import TrainingRun, build_model, fit_epochs, predict

log = logging.getLogger(__name__)

SELECT = "select"  # the selection set's role (selection jobs only)
VALIDATION_TYPES = ("trials", "concepts")
STOP_CRITERIA = ("loss", "top5")


@dataclasses.dataclass(frozen=True)
class RecipeParams:
    """What every job of the ``recipe_study`` section reads (the keys that choose jobs are not here)."""

    exemplars_per_concept: int
    n_val: int
    val_images_per_concept: int
    n_select: int
    test_repeats: int
    backbone: str
    ridge_time_bins: tuple[int, ...]
    min_train_samples: int
    threads: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RecipeParams:
        values = {f.name: cfg[f.name] for f in dataclasses.fields(cls)}
        values["ridge_time_bins"] = tuple(values["ridge_time_bins"])
        return dataclass_from_section(cls, values, "recipe_study")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One recipe of the brain module. ``stop_on`` and ``lr`` list candidates: a variant with several is
    settled by its selection job, unless ``choices_from`` names the variant whose choice it takes."""

    name: str
    validation: str
    stop_on: tuple[str, ...]
    lr: tuple[float, ...]
    brain_module: Mapping[str, Any]
    shared: bool
    choices_from: str | None

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> Variant:
        variant = cls(
            name=name,
            validation=str(cfg["validation"]),
            stop_on=tuple(cfg["stop_on"]),
            lr=tuple(float(x) for x in cfg["lr"]),
            brain_module=dict(cfg["brain_module"]),
            shared=bool(cfg["shared"]),
            choices_from=cfg.get("choices_from"),
        )
        if variant.validation not in VALIDATION_TYPES:
            raise ValueError(f"recipe_study.variants.{name}.validation must be one of {VALIDATION_TYPES}")
        if not variant.stop_on or set(variant.stop_on) - set(STOP_CRITERIA):
            raise ValueError(f"recipe_study.variants.{name}.stop_on must list criteria of {STOP_CRITERIA}")
        return variant

    @property
    def needs_selection(self) -> bool:
        """Settled by its own selection job."""
        return self.choices_from is None and (len(self.stop_on) > 1 or len(self.lr) > 1)


def variants_from_config(cfg: Mapping[str, Any]) -> dict[str, Variant]:
    """The section's variants, checked: ``choices_from`` names a variant with the same candidates."""
    variants = {name: Variant.from_config(name, v) for name, v in cfg["variants"].items()}
    for v in variants.values():
        if v.choices_from is None:
            continue
        source = variants.get(v.choices_from)
        if source is None or not source.needs_selection:
            raise ValueError(
                f"recipe_study.variants.{v.name}.choices_from: {v.choices_from!r} is not a variant with its "
                f"own selection (variants: {sorted(variants)})"
            )
        if (source.stop_on, source.lr) != (v.stop_on, v.lr):
            raise ValueError(f"recipe_study.variants.{v.name}: candidates differ from {v.choices_from}'s")
    return variants


@dataclasses.dataclass(frozen=True)
class ConceptDesign:
    """Which images one replicate shows, by role (the same for every subject, as in THINGS-MEG).

    The training concepts are put in one random order; the last ones are held out as validation concepts
    (``val_images_per_concept`` images each) and, before them, selection concepts; a training set of ``n``
    trials holds all ``exemplars_per_concept`` first exemplars of the first ``n // exemplars_per_concept``
    concepts (nested across sizes). Trial validation draws ``n_val`` of those concepts' further exemplars
    (never trained on), so both validation types leave the training set the same."""

    train: list[str]
    val_trials: list[str]
    val_concepts: list[str]
    select: list[str]
    test_large: list[str]
    test_small: list[str]

    @classmethod
    def draw(
        cls, table: pd.DataFrame, n_train: int, p: RecipeParams, seed: int, replicate: int
    ) -> ConceptDesign:
        exp = table[table["role"] == "exp"].sort_values(["concept", "exemplar"])
        train_exp = exp[exp["concept_split"] == "train"]
        images = {
            c: part["image_id"].astype(str).tolist() for c, part in train_exp.groupby("concept", sort=True)
        }
        order = derive_rng(seed, "recipe-study", replicate, "concepts").permutation(sorted(images)).tolist()
        k = p.val_images_per_concept
        n_val_c, n_sel_c = -(-p.n_val // k), -(-p.n_select // k)
        pool, held = order[: len(order) - n_val_c - n_sel_c], order[len(order) - n_val_c - n_sel_c :]
        m = n_train // p.exemplars_per_concept
        if m < 2 or m > len(pool):
            raise ValueError(
                f"a training set of {n_train} trials needs {m} training concepts of "
                f"{p.exemplars_per_concept} images; the stimuli have {len(pool)} after {n_val_c} validation "
                f"and {n_sel_c} selection concepts: raise simulation.stimuli.n_train_concepts or change "
                "recipe_study.train_sizes"
            )
        short = [c for c in order if len(images[c]) < max(k, p.exemplars_per_concept)]
        if short:
            raise ValueError(
                f"concepts {short[:3]} have fewer than {p.exemplars_per_concept} exemplars; raise "
                "simulation.stimuli.exemplars_per_train_concept"
            )
        used = pool[:m]
        spares = [i for c in used for i in images[c][p.exemplars_per_concept :]]
        if len(spares) < p.n_val:
            raise ValueError(
                f"trial validation needs {p.n_val} unused exemplars of the {m} training concepts, found "
                f"{len(spares)}: raise simulation.stimuli.exemplars_per_train_concept above "
                f"{p.exemplars_per_concept}"
            )
        val_rng = derive_rng(seed, "recipe-study", replicate, n_train, "val-trials")
        test_large, test_small = held_out_test_images(table, p)
        return cls(
            train=[i for c in used for i in images[c][: p.exemplars_per_concept]],
            val_trials=sorted(val_rng.choice(spares, size=p.n_val, replace=False).tolist()),
            val_concepts=[i for c in held[n_sel_c:] for i in images[c][:k]][: p.n_val],
            select=[i for c in held[:n_sel_c] for i in images[c][:k]][: p.n_select],
            test_large=test_large,
            test_small=test_small,
        )

    def trials(self, table: pd.DataFrame, validation: str, selection: bool = False) -> pd.DataFrame:
        """One row per trial (image_id, concept, role, index = repetition of the image so far), small set
        last; ``validation`` picks the validation images. ``selection``: the selection set instead of the
        test sets (a selection job never draws a test trial)."""
        val = self.val_trials if validation == "trials" else self.val_concepts
        roles = [(TRAIN, self.train), (VAL, val)]
        if selection:
            roles.append((SELECT, self.select))
        else:
            roles += [(TEST_LARGE, self.test_large), (TEST_SMALL, self.test_small)]
        return trial_frame(table, roles)


def held_out_test_images(table: pd.DataFrame, p: RecipeParams) -> tuple[list[str], list[str]]:
    """The test sets' trials, the same in every design: every exemplar of the test concepts (the large set)
    and each test image ``test_repeats`` times (the small set)."""
    exp = table[(table["role"] == "exp") & (table["concept_split"] == "test")]
    small = sorted(table.loc[table["role"] == "test", "image_id"].astype(str))
    return sorted(exp["image_id"].astype(str)), small * p.test_repeats


def trial_frame(table: pd.DataFrame, roles: Sequence[tuple[str, Sequence[str]]]) -> pd.DataFrame:
    """One row per trial of (role, images) in order: image_id, concept, role, index (repetition so far)."""
    ids = [i for _, part in roles for i in part]
    frame = pd.DataFrame({"image_id": ids, "role": [r for r, part in roles for _ in part]})
    frame["concept"] = table.set_index("image_id").loc[ids, "concept"].to_numpy(str)
    frame["index"] = frame.groupby("image_id").cumcount()
    return frame[["image_id", "concept", "role", "index"]]


@dataclasses.dataclass
class SubjectEpochs:
    """One simulated subject's decoder inputs: baseline-corrected, small set averaged, channels scaled by
    their SD over the training trials."""

    data: SubjectData


def prepare_subject(
    sim: EpochSimulator, raw: np.ndarray, trials: pd.DataFrame, times: np.ndarray, subject: str, where: str,
    validation: str,
) -> SubjectEpochs:  # fmt: skip
    """The decoders' input from one subject's raw epochs of ``trials``; checks that no test image or concept
    (nor, with concept validation, a validation concept) is trained on."""
    epochs = baseline_correct(raw, times)
    if (trials["role"] == TEST_SMALL).any():
        epochs, kept = _average_small_set(epochs, trials)
    else:  # a selection job
        kept = trials[["image_id", "concept", "role"]]
    kept = kept.assign(split=kept["role"])
    check_no_leakage(kept[kept["split"] != SELECT], where, validation)
    check_selection_set(kept, where)
    train_rows = np.flatnonzero(kept["split"].to_numpy(str) == TRAIN)
    epochs /= epochs[train_rows].std(axis=(0, 2))[None, :, None].astype(np.float32)
    return SubjectEpochs(_subject_data(epochs, kept, sim, subject))


def check_selection_set(trials: pd.DataFrame, where: str) -> None:
    """The selection set shares no concept with training, validation or the test sets."""
    sel = set(trials.loc[trials["split"] == SELECT, "concept"])
    other = set(trials.loc[trials["split"] != SELECT, "concept"])
    if sel & other:
        raise ValueError(f"{where}: selection concepts {sorted(sel & other)[:5]} also in other roles")


def ridge_rows(
    subject: SubjectEpochs,
    latents: Latents,
    p: RecipeParams,
    alphas: Sequence[float],
    labels: Mapping[str, Any],
) -> pd.DataFrame:
    """Ridge of one unit at every time bin, alpha chosen on this job's validation set."""
    return pd.concat(_ridge_rows(subject.data.meg, subject.data.trials, latents, p, alphas, labels))


def training_config(
    training_cfg: Mapping[str, Any], variant: Variant, lr: float, n_train: int, p: RecipeParams
) -> TrainingConfig:
    """The variant's optimisation settings at one learning rate (epoch cap as the learning curve's)."""
    cfg = TrainingConfig.from_dict({**training_cfg, "lr": lr, "stop_on": variant.stop_on[0]})
    return dataclasses.replace(cfg, max_epochs=max_epochs(cfg.max_epochs, p.min_train_samples, n_train))


def brain_rows(
    subjects: Sequence[SubjectEpochs],
    latents: Latents,
    brain_cfg: Mapping[str, Any],
    cfg: TrainingConfig,
    criteria: Sequence[str],
    model_seed: int,
    score_sets: Sequence[str],
    labels: Mapping[str, Any],
) -> pd.DataFrame:
    """Train one brain module on the subjects' training trials (one subject, or several with subject layers),
    early stopping on validation by each of ``criteria`` (one run, each criterion its own best epoch), and
    score the CLIP head of each criterion's weights on ``score_sets``, per subject."""
    data = [s.data for s in subjects]
    bcfg = BrainModuleConfig.from_dict(brain_cfg)
    train_ids = np.concatenate(
        [d.trials.loc[d.trials["split"] == TRAIN, "image_id"].to_numpy(str) for d in data]
    )
    scaler = TargetScaler.fit(latents, train_ids)
    names, positions = union_channels(data)
    sets = {s: TrialSet(data, s, names, latents, scaler) for s in (TRAIN, VAL, *score_sets)}
    model = build_model(bcfg, cfg, positions, len(data), data[0].meg.shape[2], latents.shape, model_seed)
    run = TrainingRun.start(model, cfg, model_seed, track=tuple(criteria))
    fit_epochs(
        model, sets[TRAIN], sets[VAL], cfg, torch.device("cpu"), run, progress=False, monitor_top5=False
    )
    out = []
    for criterion in criteria:
        stopper = run.stoppers[criterion]
        model.load_state_dict(run.best_states[criterion])
        log.info(
            "%s: stop on %s -> best epoch %d of %d", labels, criterion, stopper.best_epoch, len(run.history)
        )
        for test_set in score_sets:
            ts = sets[test_set]
            pred = predict(model, ts, torch.device("cpu"))[RETRIEVAL_HEAD]
            for k, d in enumerate(data):
                keep = ts.subject_index == k
                ids = ts.image_ids[keep]
                scores = item_scores(pred[keep], ids, _candidates(latents, scaler, ids))
                out.append(
                    _score_rows(scores, ids, **{**labels, "subject": d.name}, test_set=test_set).assign(
                        stop_on=criterion,
                        epochs=len(run.history),
                        best_epoch=stopper.best_epoch,
                        lr=cfg.lr,
                    )
                )
    return pd.concat(out, ignore_index=True)


def variant_brain_cfg(brain_cfg: Mapping[str, Any], variant: Variant) -> dict[str, Any]:
    """The brain module's section with the variant's overrides."""
    return {**brain_cfg, **variant.brain_module}


def read_choice(path: Path | str | None, variant: Variant) -> dict[str, Any]:
    """The (stop_on, lr) a variant trains with: fixed by the config, or its selection job's choice."""
    if path is None:
        return {"stop_on": variant.stop_on[0], "lr": variant.lr[0]}
    from megdecode.artifacts.recipe_study import read_choice as read

    choice = read(path)
    if choice["stop_on"] not in variant.stop_on or float(choice["lr"]) not in variant.lr:
        raise ValueError(
            f"{path}: choice {choice} is not among {variant.name}'s candidates; rerun its selection"
        )
    return choice


def choose(select_scores: pd.DataFrame, variant: Variant) -> dict[str, Any]:
    """The candidate (stop_on, lr) with the highest mean top-5 on the selection set; ties go to the first
    candidate in the config's order (learning rates, then criteria)."""
    means = select_scores.groupby(["stop_on", "lr"])["top5_acc"].mean()
    best, best_value = None, -np.inf
    for lr in variant.lr:
        for criterion in variant.stop_on:
            value = float(means.loc[(criterion, lr)])
            if value > best_value:
                best, best_value = {"stop_on": criterion, "lr": lr}, value
    table = [
        {"stop_on": c, "lr": float(lr), "select_top5_acc": round(float(v), 6)} for (c, lr), v in means.items()
    ]
    return {**best, "select_top5_acc": round(best_value, 6), "candidates": table}


# ---- jobs (called by the rule scripts through :func:`run_recipe_job`)


@dataclasses.dataclass(frozen=True)
class StudyInputs:
    """What every job reads: the stimuli table, the study's ground truth, the backbone's latents and the
    rule's config slices (``recipe_study``, ``simulation``, ``epochs``, ``brain_module``, ``training``,
    ``alphas``, ``seed``)."""

    table: pd.DataFrame
    truth: dict
    latents: Latents
    params: Mapping[str, Any]

    @property
    def recipe(self) -> RecipeParams:
        return RecipeParams.from_config(self.params["recipe_study"])

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    @property
    def grid(self) -> EpochGrid:
        return EpochGrid(**self.params["epochs"])

    def variant(self, name: str) -> Variant:
        return variants_from_config(self.params["recipe_study"])[name]

    def draw(
        self, world: str, subject: str, replicate: int, trials: pd.DataFrame
    ) -> tuple[EpochSimulator, np.ndarray]:
        """One subject's simulator and the raw epochs of ``trials``, each trial from its own generator keyed
        by (world, subject, replicate, image, repetition): a trial is the same in every job that draws it."""
        params = dataclasses.replace(SimulationParams.from_config(self.params["simulation"]), world=world)
        truth = world_truth(params, self.table, self.truth, self.seed)
        sim = EpochSimulator(params, truth, self.table, self.grid, self.seed, subject)
        key = (self.seed, "recipe-study", world, subject, replicate)
        ids = trials["image_id"].tolist()
        rngs = [derive_rng(*key, i, int(k)) for i, k in zip(ids, trials["index"], strict=True)]
        return sim, sim.draw(ids, rngs)[0]

    def subject(
        self, world: str, subject: str, replicate: int, n_train: int, validation: str, selection: bool = False
    ) -> SubjectEpochs:
        """One unit's decoder inputs (:func:`prepare_subject`) for its design and validation type."""
        design = ConceptDesign.draw(self.table, n_train, self.recipe, self.seed, replicate)
        trials = design.trials(self.table, validation, selection)
        sim, raw = self.draw(world, subject, replicate, trials)
        where = f"recipe study {world}/sub-{subject}/seed {replicate}"
        return prepare_subject(sim, raw, trials, self.grid.times, subject, where, validation)


def ridge_job(
    inputs: StudyInputs, world: str, subject: str, replicate: int, n_train: int, validation: str
) -> pd.DataFrame:
    """Ridge of one unit (every time bin, alpha on this validation type)."""
    data = inputs.subject(world, subject, replicate, n_train, validation)
    labels = dict(
        world=world, subject=subject, seed=replicate, n_train=n_train, backbone=inputs.recipe.backbone
    )
    rows = ridge_rows(data, inputs.latents, inputs.recipe, inputs.params["alphas"], labels)
    return rows.assign(validation=validation, variant="")


def brain_job(
    inputs: StudyInputs,
    world: str,
    subjects: Sequence[str],
    replicate: int,
    n_train: int,
    variant: Variant,
    choice: Mapping[str, Any],
    on_selection_set: bool = False,
) -> pd.DataFrame:
    """The variant's brain module at its chosen (stop_on, lr): one model per subject, or one shared model
    when ``subjects`` lists several; rows for every criterion it lists (``chosen`` marks the chosen one).
    ``on_selection_set``: the same model (same trials, same seed) scored on validation and the selection set
    instead of the test sets, and no test trial drawn (the study's cross-check of the variants)."""
    p = inputs.recipe
    data = [
        inputs.subject(world, s, replicate, n_train, variant.validation, selection=on_selection_set)
        for s in subjects
    ]
    cfg = training_config(inputs.params["training"], variant, float(choice["lr"]), n_train, p)
    model_seed = derive_seed(
        inputs.seed, "recipe-study", "brain", world, variant.name, *subjects, replicate, n_train
    )
    labels = dict(
        world=world, subject="", seed=replicate, n_train=n_train, backbone=p.backbone, decoder="brain"
    )
    rows = brain_rows(
        data,
        inputs.latents,
        variant_brain_cfg(inputs.params["brain_module"], variant),
        cfg,
        variant.stop_on,
        model_seed,
        (VAL, SELECT) if on_selection_set else (VAL, TEST_SMALL, TEST_LARGE),
        labels,
    )
    return rows.assign(
        validation=variant.validation, variant=variant.name, chosen=rows["stop_on"] == choice["stop_on"]
    )


def selection_job(
    inputs: StudyInputs, world: str, subject: str, replicate: int, n_train: int, variant: Variant
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Every candidate (lr x stop_on) of ``variant`` trained on one unit and scored on the selection set;
    returns the choice (:func:`choose`) and the scores (validation and selection sets)."""
    p = inputs.recipe
    data = inputs.subject(world, subject, replicate, n_train, variant.validation, selection=True)
    rows = []
    for lr in variant.lr:
        cfg = training_config(inputs.params["training"], variant, lr, n_train, p)
        model_seed = derive_seed(
            inputs.seed, "recipe-study", "select", world, variant.name, subject, replicate, lr
        )
        labels = dict(
            world=world,
            subject=subject,
            seed=replicate,
            n_train=n_train,
            backbone=p.backbone,
            decoder="brain",
        )
        rows.append(
            brain_rows(
                [data],
                inputs.latents,
                variant_brain_cfg(inputs.params["brain_module"], variant),
                cfg,
                variant.stop_on,
                model_seed,
                (VAL, SELECT),
                labels,
            )
        )
    scores = pd.concat(rows, ignore_index=True).assign(validation=variant.validation, variant=variant.name)
    choice = choose(scores[scores["test_set"] == SELECT], variant)
    log.info("%s: chose %s", variant.name, choice)
    return {
        "variant": variant.name,
        "world": world,
        "subject": subject,
        "seed": replicate,
        "n_train": n_train,
        **choice,
    }, scores


def ceiling_job(
    inputs: StudyInputs, world: str, subject: str, replicate: int, concept_renders: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """The image oracle and the fair ceiling (:mod:`~megdecode.learning_curve.oracle`) on one subject's test
    trials, the very trials every unit of that subject is scored on; neither depends on the training set.
    The fair ceiling knows the training concepts' codes and fresh renders of each test concept, never a test
    image's own response."""
    test_large, test_small = held_out_test_images(inputs.table, inputs.recipe)
    trials = trial_frame(inputs.table, [(TEST_LARGE, test_large), (TEST_SMALL, test_small)])
    sim, epochs = inputs.draw(world, subject, replicate, trials)
    labels = dict(world=world, subject=subject, seed=replicate)
    rows = pd.concat(
        [
            _oracle_rows(sim, epochs, trials, labels),
            _fair_ceiling_rows(sim, epochs, trials, inputs.table, concept_renders, labels),
        ],
        ignore_index=True,
    )
    return rows.assign(validation="", variant="")


def study_inputs(files: Any, params: Mapping[str, Any]) -> StudyInputs:
    """A rule's inputs (``stimuli``, ``ground_truth``, ``latents``: files of one backbone's folder) read."""
    from megdecode.artifacts.latents import read_latents
    from megdecode.artifacts.sourcedata import read_ground_truth
    from megdecode.artifacts.stimuli import read_stimuli

    latents_dir = Path(list(files.latents)[0]).parent
    return StudyInputs(
        read_stimuli(files.stimuli), read_ground_truth(files.ground_truth), read_latents(latents_dir), params
    )
