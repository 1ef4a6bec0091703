"""Which evaluation jobs exist for a config: backbones, models, seeds, and the files each job reads/writes.

Used by rules/evaluate.smk and rules/report.smk (kept here so the rule files hold rules only and the
logic is unit-tested). ``patterns`` maps names to the path patterns of docs/ARCHITECTURE.md, with
``{backbone}``, ``{subject}``, ``{seed}``, ``{model}`` placeholders:
``brain``, ``brain_shared``, ``ridge`` (predictions), ``retrieval`` (output TSV), ``latents`` (folder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MODELS = ("brain", "brain_shared", "ridge", "chance")


def chosen_backbones(config: Mapping[str, Any], section: str) -> list[str]:
    """Backbones a training section uses (its ``backbones``; null = every configured backbone)."""
    chosen = config.get(section, {}).get("backbones")
    return [b for b in config.get("backbones", {}) if chosen is None or b in chosen]


def evaluated_backbones(config: Mapping[str, Any]) -> list[str]:
    """Backbones with at least one trained decoder (brain module or ridge), in config order."""
    used = set(chosen_backbones(config, "training")) | set(chosen_backbones(config, "ridge"))
    return [b for b in config.get("backbones", {}) if b in used]


def brain_seeds(config: Mapping[str, Any]) -> list[int]:
    """Seeds of the brain module (training.seeds, else the master seed)."""
    return [int(s) for s in (config.get("training", {}).get("seeds") or [config.get("seed", 0)])]


def models_for(config: Mapping[str, Any], backbone: str) -> list[str]:
    """Models scored for one backbone: brain (and brain_shared) where trained, ridge where fitted, chance."""
    brain = backbone in chosen_backbones(config, "training")
    trained = {
        "brain": brain,
        "brain_shared": brain and bool(config.get("training", {}).get("shared_model", False)),
        "ridge": backbone in chosen_backbones(config, "ridge"),
    }
    trained["chance"] = trained["brain"] or trained["ridge"]
    return [m for m in config["evaluation"]["models"] if trained[m]]


def timeresolved_backbones(config: Mapping[str, Any]) -> list[str]:
    """Backbones decoded over time (evaluation.timeresolved.backbones; null = every evaluated one)."""
    tr = config["evaluation"]["timeresolved"]
    if not tr["enabled"]:
        return []
    chosen = tr["backbones"]
    return [b for b in evaluated_backbones(config) if chosen is None or b in chosen]


def brain_window_backbones(config: Mapping[str, Any]) -> list[str]:
    """Backbones whose brain module is also trained per listed window: trained and decoded over time."""
    if not config["evaluation"]["timeresolved"].get("brain_windows"):
        return []
    brain = set(chosen_backbones(config, "training"))
    return [b for b in timeresolved_backbones(config) if b in brain]


def brain_window_files(
    config: Mapping[str, Any], subject: str, pattern: str, window_names: Sequence[str]
) -> dict[str, dict[str, str]]:
    """{backbone: {window name: predictions.npz}} of one subject (``pattern`` has backbone/subject/window)."""
    return {
        b: {w: pattern.format(backbone=b, subject=subject, window=w) for w in window_names}
        for b in brain_window_backbones(config)
    }


def source_model(config: Mapping[str, Any], model: str, backbone: str) -> str:
    """Whose predictions a model scores: itself, or for ``chance`` the chance_source (else ridge)."""
    if model != "chance":
        return model
    source = config["evaluation"]["chance_source"]
    return source if source in models_for(config, backbone) else "ridge"


def prediction_files(
    config: Mapping[str, Any], model: str, backbone: str, subjects: Sequence[str], patterns: Mapping[str, str]
) -> dict[str, dict[str, list[str]]]:
    """{source model: {subject: [predictions.npz per seed]}} that one (model, backbone) scores."""
    source = source_model(config, model, backbone)
    seeds: list[int | None] = [None] if source == "ridge" else list(brain_seeds(config))
    pattern = patterns[source]
    return {
        source: {s: [pattern.format(backbone=backbone, subject=s, seed=k) for k in seeds] for s in subjects}
    }


def retrieval_jobs(
    config: Mapping[str, Any], subjects: Sequence[str], patterns: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One dict per (model, backbone): ``model backbone latent_dir prediction_files outputs``."""
    jobs = []
    for b in evaluated_backbones(config):
        for m in models_for(config, b):
            outputs = {m: {s: patterns["retrieval"].format(model=m, backbone=b, subject=s) for s in subjects}}
            jobs.append(
                dict(
                    model=m,
                    backbone=b,
                    latent_dir=patterns["latents"].format(backbone=b),
                    prediction_files=prediction_files(config, m, b, subjects, patterns),
                    outputs=outputs,
                )
            )
    return jobs


def job_outputs(jobs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f for job in jobs for per_subject in job["outputs"].values() for f in per_subject.values()]


def job_inputs(jobs: Sequence[Mapping[str, Any]]) -> list[str]:
    files = {
        f
        for job in jobs
        for per_subject in job["prediction_files"].values()
        for fs in per_subject.values()
        for f in fs
    }
    return sorted(files)


def example_choice(config: Mapping[str, Any], subjects: Sequence[str]) -> tuple[str, str]:
    """(backbone, subject) of the example figures: configured, else the first backbone with a brain module."""
    report = config.get("report", {})
    backbones = evaluated_backbones(config)
    if not backbones:
        raise ValueError("no backbone is trained: set training.backbones or ridge.backbones")
    with_brain = [b for b in backbones if "brain" in models_for(config, b)]
    backbone = report.get("example_backbone") or (with_brain or backbones)[0]
    subject = report.get("example_subject") or subjects[0]
    if backbone not in backbones:
        raise ValueError(f"report.example_backbone {backbone!r} is not trained; choose one of {backbones}")
    if subject not in subjects:
        raise ValueError(f"report.example_subject {subject!r} is not in study.subjects {list(subjects)}")
    return backbone, subject


def example_inputs(
    config: Mapping[str, Any], subjects: Sequence[str], patterns: Mapping[str, str]
) -> dict[str, str]:
    """Predictions (and model weights, when a brain module is scored) of the example backbone and subject."""
    backbone, subject = example_choice(config, subjects)
    if "brain" in models_for(config, backbone):
        pred = patterns["brain"].format(backbone=backbone, subject=subject, seed=brain_seeds(config)[0])
        return {"predictions": pred, "weights": pred.rsplit("/", 1)[0] + "/model.safetensors"}
    return {"predictions": patterns["ridge"].format(backbone=backbone, subject=subject)}
