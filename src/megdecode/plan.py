"""Which jobs a config asks for: backbones, models, seeds, windows and generators, decided in one place.

:func:`make_plan` reads the validated config once; the rules and the evaluation and report stages ask the
resulting :class:`Plan` (with a :class:`~megdecode.artifacts.paths.Layout` for the files of each job).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from megdecode.artifacts.paths import Layout
from megdecode.artifacts.windows import listed_windows
from megdecode.config import ConfigError

MODELS = ("brain", "brain_shared", "ridge", "chance")
NON_IMAGE_KINDS = ("attributes", "huggingface_text")  # latents that do not come from pixels


def _chosen(all_names: Sequence[str], chosen: Sequence[str] | None, key: str) -> list[str]:
    """``chosen`` (each checked against ``all_names``), or all of them when null."""
    if chosen is None:
        return list(all_names)
    unknown = sorted(set(chosen) - set(all_names))
    if unknown:
        raise ConfigError(
            f"config {key} names {unknown}, not in `backbones` ({list(all_names)}); fix the config"
        )
    return [b for b in all_names if b in chosen]


def _retrieval_job(
    layout: Layout, model: str, backbone: str, prediction_files: dict[str, list[str]], table_pattern: str
) -> dict[str, Any]:
    """One retrieval job: ``model backbone latent_dir prediction_files outputs`` (one table per subject)."""
    return dict(
        model=model,
        backbone=backbone,
        latent_dir=layout.latents.format(backbone=backbone),
        prediction_files=prediction_files,
        outputs={
            s: table_pattern.format(model=model, backbone=backbone, subject=s) for s in prediction_files
        },
    )


@dataclass(frozen=True)
class FmriPlan:
    """The fMRI companion study's jobs (config ``fmri``): subjects, backbones and decoders."""

    subjects: list[str]
    backbones: list[str]
    models: list[str]  # ridge, mlp
    recon_model: str  # the decoder whose predictions the generators turn into images
    reconstruct: bool  # generators run on fMRI predictions too (decoder / retrieval, backbone trained)
    ceiling: bool = False  # the simulated study's fMRI ceiling (its fair ideal observer) is computed

    def prediction_file(self, layout: Layout, model: str, backbone: str, subject: str) -> str:
        return layout.fmri_predictions(model).format(backbone=backbone, subject=subject)

    def retrieval_jobs(self, layout: Layout) -> list[dict[str, Any]]:
        """One dict per (decoder, backbone), in the form of :meth:`Plan.retrieval_jobs`."""
        return [
            _retrieval_job(
                layout,
                m,
                b,
                {s: [self.prediction_file(layout, m, b, s)] for s in self.subjects},
                layout.fmri_retrieval_table,
            )
            for b in self.backbones
            for m in self.models
        ]


def feature_level(spec: Mapping[str, Any]) -> str:
    """The level of the image features a latent carries: ``high`` for semantic latents (stimulus attributes,
    captions, pretrained vision models), ``low`` for image statistics (handcrafted features, VAE latents),
    ``untrained`` for randomly initialised networks (image statistics of no particular kind: counted as
    neither level)."""
    if spec.get("kind") in NON_IMAGE_KINDS:
        return "high"
    if (spec.get("options") or {}).get("random_init"):
        return "untrained"
    if spec.get("kind") == "huggingface_vision":
        return "high"
    return "low"


@dataclass(frozen=True)
class Plan:
    """The jobs of one config (every list in config order)."""

    subjects: list[str]
    backbones: dict[str, dict[str, Any]]  # every configured backbone: its config entry
    brain_backbones: list[str]
    ridge_backbones: list[str]
    seeds: list[int]
    shared_model: bool
    evaluated_models: list[str]  # evaluation.models
    chance_source: str
    timeresolved_backbones: list[str]
    windows: dict[str, tuple[float, float]]  # listed window name -> (tmin, tmax)
    generators: list[str]
    recon_model: str
    recon_backbone: str
    recon_seed: int
    recon_vd_backbones: list[str]
    recon_feature_backbones: list[str]
    example_backbone: str
    example_subject: str
    learning_curve: dict[str, Any]  # the learning_curve section and whether the study is simulated
    realtime: tuple[str, int] | None = None  # (backbone, seed) of the online replay, when enabled
    fmri: FmriPlan | None = None  # the fMRI companion study, when ``fmri.enabled``
    #: whether the attribute readout (reconstruction.metrics.attribute_readout) scores reconstructions
    recon_attribute_readout: bool = False

    # ---- the learning-curve experiment (checked only when it is asked for: other configs need not name its
    # backbones)
    def learning_curve_backbones(self) -> list[str]:
        """Backbones of the learning curve; a :class:`ConfigError` if the study is not simulated or a name
        points nowhere."""
        if not self.learning_curve["simulated"]:
            raise ConfigError("the learning curve simulates its epochs: it needs study.source 'simulated'")
        return _chosen(list(self.backbones), self.learning_curve["backbones"], "learning_curve.backbones")

    # ---- retrieval
    @property
    def evaluated_backbones(self) -> list[str]:
        """Backbones with at least one trained decoder (brain module or ridge)."""
        used = set(self.brain_backbones) | set(self.ridge_backbones)
        return [b for b in self.backbones if b in used]

    def models_for(self, backbone: str) -> list[str]:
        """Models scored for one backbone: brain (brain_shared) where trained, ridge where fitted, chance."""
        trained = {
            "brain": backbone in self.brain_backbones,
            "brain_shared": backbone in self.brain_backbones and self.shared_model,
            "ridge": backbone in self.ridge_backbones,
        }
        trained["chance"] = trained["brain"] or trained["ridge"]
        return [m for m in self.evaluated_models if trained[m]]

    def source_model(self, model: str, backbone: str) -> str:
        """Whose predictions a model scores: itself, or for ``chance`` the chance_source (else ridge)."""
        if model != "chance":
            return model
        return self.chance_source if self.chance_source in self.models_for(backbone) else "ridge"

    def prediction_files(self, layout: Layout, model: str, backbone: str, subject: str) -> list[str]:
        """The predictions.npz (one per seed; one for ridge) that ``model`` scores for one subject."""
        source = self.source_model(model, backbone)
        seeds = [None] if source == "ridge" else self.seeds
        pattern = layout.predictions(source)
        return [pattern.format(backbone=backbone, subject=subject, seed=k) for k in seeds]

    def retrieval_jobs(self, layout: Layout) -> list[dict[str, Any]]:
        """One dict per (model, backbone): ``model backbone latent_dir prediction_files outputs``."""
        return [
            _retrieval_job(
                layout,
                m,
                b,
                {s: self.prediction_files(layout, m, b, s) for s in self.subjects},
                layout.retrieval_table,
            )
            for b in self.evaluated_backbones
            for m in self.models_for(b)
        ]

    # ---- time-resolved
    @property
    def brain_window_backbones(self) -> list[str]:
        """Backbones whose brain module is also trained per listed window: trained and decoded over time."""
        if not self.windows:
            return []
        return [b for b in self.timeresolved_backbones if b in self.brain_backbones]

    def brain_window_files(self, layout: Layout, subject: str) -> dict[str, dict[str, str]]:
        """{backbone: {window name: predictions.npz}} of one subject."""
        pattern = layout.predictions("brain_window")
        return {
            b: {w: pattern.format(backbone=b, subject=subject, window=w) for w in self.windows}
            for b in self.brain_window_backbones
        }

    # ---- reconstruction
    def generator_backbones(self, generator: str) -> list[str]:
        """Backbones whose predictions one generator consumes (the first is the primary one)."""
        return self.recon_vd_backbones if generator == "versatile_diffusion" else [self.recon_backbone]

    def recon_predictions(self, layout: Layout, backbone: str, subject: str) -> str:
        """predictions.npz of the configured model (a brain-module seed, or ridge): one backbone, subject."""
        pattern = layout.predictions(self.recon_model)
        return pattern.format(backbone=backbone, subject=subject, seed=self.recon_seed)

    # ---- report
    def example_inputs(self, layout: Layout) -> dict[str, str]:
        """Predictions (and weights, when a brain module is scored) of the example backbone and subject."""
        b, s = self.example_backbone, self.example_subject
        if "brain" in self.models_for(b):
            pred = layout.predictions("brain").format(backbone=b, subject=s, seed=self.seeds[0])
            weights = layout.model_file("brain", "weights").format(backbone=b, subject=s, seed=self.seeds[0])
            return {"predictions": pred, "weights": weights}
        return {"predictions": layout.predictions("ridge").format(backbone=b, subject=s)}


def make_plan(config: Mapping[str, Any]) -> Plan:
    """The jobs of a validated config; a name that points nowhere is a :class:`ConfigError`."""
    backbones = dict(config["backbones"])
    names = list(backbones)
    training, evaluation, recon = config["training"], config["evaluation"], config["reconstruction"]
    brain = _chosen(names, training["backbones"], "training.backbones")
    ridge = _chosen(names, config["ridge"]["backbones"], "ridge.backbones")
    tr = evaluation["timeresolved"]
    evaluated = [b for b in names if b in set(brain) | set(ridge)]
    timeresolved = (
        _chosen(evaluated, tr["backbones"], "evaluation.timeresolved.backbones") if tr["enabled"] else []
    )
    recon_trained = brain if recon["model"] == "brain" else ridge
    recon_backbone = recon["backbone"] or next(iter(recon_trained), "none")
    vd = recon["versatile_diffusion"]
    vd_backbones = [b for b in (vd["vision_backbone"], vd["text_backbone"], vd["autokl_backbone"]) if b]
    chosen_features = recon["metrics"]["feature_backbones"]
    features = [
        b
        for b in _chosen(names, chosen_features, "reconstruction.metrics.feature_backbones")
        if backbones[b].get("kind") not in NON_IMAGE_KINDS
    ]
    subjects = list(config["study"]["subjects"])
    plan = Plan(
        subjects=subjects,
        backbones=backbones,
        brain_backbones=brain,
        ridge_backbones=ridge,
        seeds=[int(s) for s in training["seeds"]],
        shared_model=bool(training["shared_model"]),
        evaluated_models=list(evaluation["models"]),
        chance_source=evaluation["chance_source"],
        timeresolved_backbones=timeresolved,
        windows={w.name: (w.tmin, w.tmax) for w in listed_windows(tr["brain_windows"])},
        generators=list(recon["generators"]),
        recon_model=recon["model"],
        recon_backbone=recon_backbone,
        recon_seed=int(recon["brain_seed"] if recon["brain_seed"] is not None else training["seeds"][0]),
        recon_vd_backbones=vd_backbones,
        recon_feature_backbones=features,
        example_backbone="",
        example_subject="",
        learning_curve={
            "backbones": list(config["learning_curve"]["backbones"]),
            "simulated": config["study"]["source"] == "simulated",
        },
    )
    backbone, subject = _example_choice(plan, config["report"])
    fmri = _fmri_plan(config, names, plan.recon_backbone) if config.get("fmri", {}).get("enabled") else None
    return dataclasses.replace(
        plan,
        example_backbone=backbone,
        example_subject=subject,
        realtime=_realtime_choice(plan, config),
        fmri=fmri,
        recon_attribute_readout=bool(plan.generators)
        and attribute_readout_on(
            recon["metrics"]["attribute_readout"]["enabled"], config["study"]["source"] == "simulated"
        ),
    )


def attribute_readout_on(setting: str | bool, simulated: bool) -> bool:
    """``reconstruction.metrics.attribute_readout.enabled``: ``auto`` -> on for a simulated study (its
    stimulus table has the attribute columns), off for a real one (pretrained vision backbones give
    high-level metrics)."""
    if setting == "auto":
        return simulated
    if isinstance(setting, bool):
        return setting
    raise ConfigError(
        f"reconstruction.metrics.attribute_readout.enabled must be auto, true or false, got {setting!r}"
    )


def _realtime_choice(plan: Plan, config: Mapping[str, Any]) -> tuple[str, int] | None:
    """(backbone, seed) of the brain module the online replay uses, or None when it is off."""
    rt = config.get("realtime") or {}
    if not rt.get("enabled"):
        return None
    if not plan.brain_backbones:
        raise ConfigError("realtime.enabled needs a brain module: set training.backbones")
    # null: the first of training.backbones as listed there (brain_backbones follows the backbones section)
    listed = [b for b in (config.get("training", {}).get("backbones") or []) if b in plan.brain_backbones]
    backbone = rt.get("backbone") or (listed or plan.brain_backbones)[0]
    if backbone not in plan.brain_backbones:
        raise ConfigError(
            f"realtime.backbone {backbone!r} has no brain module; choose one of {plan.brain_backbones}"
        )
    seed = plan.seeds[0] if rt.get("seed") is None else int(rt["seed"])
    if seed not in plan.seeds:
        raise ConfigError(f"realtime.seed {seed} is not trained; choose one of training.seeds {plan.seeds}")
    return backbone, seed


def _fmri_plan(config: Mapping[str, Any], names: Sequence[str], recon_backbone: str) -> FmriPlan:
    """The fMRI companion's jobs; a source this workflow cannot run yet is a :class:`ConfigError`."""
    fmri = config["fmri"]
    if fmri["source"] == "nsd":
        if config["study"]["source"] != "nsd":
            raise ConfigError(
                "fmri.source 'nsd' decodes the Natural Scenes Dataset's own images: it needs study.source "
                f"'nsd' (got {config['study']['source']!r}; see config/nsd.yaml and docs/nsd.md)"
            )
    elif config["study"]["source"] != "simulated":
        raise ConfigError(
            "fmri.source 'simulated' renders responses to the simulated study's own images: it needs "
            f"study.source 'simulated' (got {config['study']['source']!r}); set fmri.enabled: false"
        )
    backbones = _chosen(names, fmri["backbones"], "fmri.backbones")
    recon = config["reconstruction"]
    return FmriPlan(
        subjects=list(fmri["subjects"] or config["study"]["subjects"]),
        backbones=backbones,
        models=list(fmri["models"]),
        recon_model=fmri["reconstruction_model"],
        reconstruct=bool(set(recon["generators"]) & {"decoder", "retrieval"})
        and fmri["reconstruction_model"] in fmri["models"]
        and recon_backbone in backbones,
        ceiling=fmri["source"] == "simulated",
    )


def _example_choice(plan: Plan, report: Mapping[str, Any]) -> tuple[str, str]:
    """(backbone, subject) of the example figures: configured, else the first backbone with a brain module."""
    backbones = plan.evaluated_backbones
    if not backbones:
        raise ConfigError("no backbone is trained: set training.backbones or ridge.backbones")
    with_brain = [b for b in backbones if "brain" in plan.models_for(b)]
    backbone = report["example_backbone"] or (with_brain or backbones)[0]
    subject = report["example_subject"] or plan.subjects[0]
    if backbone not in backbones:
        raise ConfigError(f"report.example_backbone {backbone!r} is not trained; choose one of {backbones}")
    if subject not in plan.subjects:
        raise ConfigError(f"report.example_subject {subject!r} is not in study.subjects {plan.subjects}")
    return backbone, subject


def recipe_crosscheck_variants(recipe_cfg: Mapping[str, Any]) -> list[str]:
    """The recipe study's ``crosscheck_variants``, checked: per-subject variants of the study."""
    variants = recipe_cfg["variants"]
    names = list(recipe_cfg.get("crosscheck_variants") or [])
    wrong = [n for n in names if n not in variants or variants[n].get("shared")]
    if wrong:
        per_subject = [n for n, v in variants.items() if not v.get("shared")]
        raise ConfigError(
            f"config recipe_study.crosscheck_variants names {wrong}: list per-subject variants of "
            f"recipe_study.variants ({per_subject})"
        )
    return names
