"""Which evaluation jobs a config asks for."""

from __future__ import annotations

import pytest

from megdecode import evaluation_plan as plan
from megdecode.config import validate_config

PATTERNS = {
    "brain": "m/brain/{backbone}/sub-{subject}/seed-{seed}/predictions.npz",
    "brain_shared": "m/shared/{backbone}/seed-{seed}/predictions_sub-{subject}.npz",
    "ridge": "m/ridge/{backbone}/sub-{subject}/predictions.npz",
    "retrieval": "e/{model}/{backbone}/sub-{subject}.tsv",
    "latents": "l/{backbone}",
}


def config(**sections):
    base = {
        "study": {"source": "simulated", "subjects": ["01", "02"], "sessions": ["01"], "runs": ["01"]},
        "backbones": {"hog": {"kind": "handcrafted"}, "attributes": {"kind": "attributes"}},
        "training": {"backbones": ["attributes"], "seeds": [0, 1]},
    }
    base.update(sections)
    return validate_config(base)


def test_models_per_backbone() -> None:
    cfg = config()
    assert plan.evaluated_backbones(cfg) == ["hog", "attributes"]  # ridge on every backbone by default
    assert plan.models_for(cfg, "attributes") == ["brain", "ridge", "chance"]
    assert plan.models_for(cfg, "hog") == ["ridge", "chance"]
    assert plan.source_model(cfg, "chance", "attributes") == "brain"
    assert plan.source_model(cfg, "chance", "hog") == "ridge"  # no brain module on hog


def test_jobs_inputs_and_outputs() -> None:
    cfg = config()
    jobs = plan.retrieval_jobs(cfg, ["01", "02"], PATTERNS)
    assert {(j["model"], j["backbone"]) for j in jobs} == {
        ("ridge", "hog"), ("chance", "hog"), ("brain", "attributes"), ("ridge", "attributes"),
        ("chance", "attributes"),
    }  # fmt: skip
    brain = next(j for j in jobs if j["model"] == "brain")
    assert brain["prediction_files"]["brain"]["02"] == [
        "m/brain/attributes/sub-02/seed-0/predictions.npz",
        "m/brain/attributes/sub-02/seed-1/predictions.npz",
    ]
    assert "e/chance/hog/sub-01.tsv" in plan.job_outputs(jobs)
    assert len(plan.job_outputs(jobs)) == 10
    assert "m/ridge/hog/sub-01/predictions.npz" in plan.job_inputs(jobs)


def test_shared_model_and_timeresolved_choice() -> None:
    cfg = config(
        training={"backbones": ["attributes"], "shared_model": True},
        evaluation={"models": ["brain", "brain_shared", "ridge"], "timeresolved": {"backbones": ["hog"]}},
    )
    assert plan.models_for(cfg, "attributes") == ["brain", "brain_shared", "ridge"]
    assert plan.timeresolved_backbones(cfg) == ["hog"]
    off = config(evaluation={"timeresolved": {"enabled": False}})
    assert plan.timeresolved_backbones(off) == []
    assert plan.brain_window_backbones(cfg) == []  # no brain_windows listed
    windows = config(
        training={"backbones": ["hog"]},
        evaluation={"timeresolved": {"backbones": ["hog", "attributes"], "brain_windows": [[0.0, 0.5]]}},
    )
    assert plan.brain_window_backbones(windows) == ["hog"]
    files = plan.brain_window_files(windows, "01", "m/{backbone}/sub-{subject}/{window}.npz", ["w1"])
    assert files == {"hog": {"w1": "m/hog/sub-01/w1.npz"}}


def test_example_choice() -> None:
    cfg = config()
    assert plan.example_choice(cfg, ["01", "02"]) == ("attributes", "01")
    inputs = plan.example_inputs(cfg, ["01", "02"], PATTERNS)
    assert inputs["weights"] == "m/brain/attributes/sub-01/seed-0/model.safetensors"
    with pytest.raises(ValueError, match="example_subject"):
        plan.example_choice(config(report={"example_subject": "09"}), ["01", "02"])
