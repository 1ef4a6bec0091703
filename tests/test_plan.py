"""Which jobs a config asks for (megdecode.plan) and where their files are (megdecode.artifacts.paths)."""

from __future__ import annotations

import pytest

from megdecode.artifacts.paths import Layout
from megdecode.config import ConfigError, validate_config
from megdecode.plan import make_plan

LAYOUT = Layout(results="r", bids_root="r/bids", stimuli_images="r/stimuli/images")


def config(**sections):
    base = {
        "study": {"source": "simulated", "subjects": ["01", "02"], "sessions": ["01"], "runs": ["01"]},
        "backbones": {"hog": {"kind": "handcrafted"}, "attributes": {"kind": "attributes"}},
        "training": {"backbones": ["attributes"], "seeds": [0, 1]},
    }
    base.update(sections)
    return validate_config(base)


def test_models_per_backbone() -> None:
    plan = make_plan(config())
    assert plan.evaluated_backbones == ["hog", "attributes"]  # ridge on every backbone by default
    assert plan.models_for("attributes") == ["brain", "ridge", "chance"]
    assert plan.models_for("hog") == ["ridge", "chance"]
    assert plan.source_model("chance", "attributes") == "brain"
    assert plan.source_model("chance", "hog") == "ridge"  # no brain module on hog


def test_jobs_inputs_and_outputs() -> None:
    jobs = make_plan(config()).retrieval_jobs(LAYOUT)
    assert {(j["model"], j["backbone"]) for j in jobs} == {
        ("ridge", "hog"), ("chance", "hog"), ("brain", "attributes"), ("ridge", "attributes"),
        ("chance", "attributes"),
    }  # fmt: skip
    brain = next(j for j in jobs if j["model"] == "brain")
    assert brain["prediction_files"]["02"] == [
        "r/models/brain/attributes/sub-02/seed-0/predictions.npz",
        "r/models/brain/attributes/sub-02/seed-1/predictions.npz",
    ]
    chance_hog = next(j for j in jobs if j["model"] == "chance" and j["backbone"] == "hog")
    assert chance_hog["prediction_files"]["01"] == ["r/models/ridge/hog/sub-01/predictions.npz"]
    assert chance_hog["outputs"]["01"] == "r/evaluation/retrieval/chance/hog/sub-01.tsv"
    assert sum(len(j["outputs"]) for j in jobs) == 10


def test_shared_model_and_timeresolved_choice() -> None:
    plan = make_plan(
        config(
            training={"backbones": ["attributes"], "shared_model": True},
            evaluation={"models": ["brain", "brain_shared", "ridge"], "timeresolved": {"backbones": ["hog"]}},
        )
    )
    assert plan.models_for("attributes") == ["brain", "brain_shared", "ridge"]
    assert plan.timeresolved_backbones == ["hog"]
    assert make_plan(config(evaluation={"timeresolved": {"enabled": False}})).timeresolved_backbones == []
    assert plan.brain_window_backbones == []  # no brain_windows listed
    windows = make_plan(
        config(
            training={"backbones": ["hog"]},
            evaluation={"timeresolved": {"backbones": ["hog", "attributes"], "brain_windows": [[0.0, 0.5]]}},
        )
    )
    assert windows.brain_window_backbones == ["hog"]
    assert windows.windows == {"listed_+0_+500ms": (0.0, 0.5)}
    assert windows.brain_window_files(LAYOUT, "01") == {
        "hog": {"listed_+0_+500ms": "r/models/brain_window/hog/sub-01/listed_+0_+500ms/predictions.npz"}
    }


def test_unknown_backbone_names_are_config_errors() -> None:
    """Every section that names backbones is checked the same way (it used to be lenient in some)."""
    with pytest.raises(ConfigError, match=r"training.backbones names \['hgo'\]"):
        make_plan(config(training={"backbones": ["hgo"]}))
    with pytest.raises(ConfigError, match="evaluation.timeresolved.backbones"):
        make_plan(config(evaluation={"timeresolved": {"backbones": ["nope"]}}))
    with pytest.raises(ConfigError, match="feature_backbones"):
        make_plan(config(reconstruction={"metrics": {"feature_backbones": ["nope"]}}))


def test_example_choice_and_reconstruction() -> None:
    plan = make_plan(config())
    assert (plan.example_backbone, plan.example_subject) == ("attributes", "01")
    inputs = plan.example_inputs(LAYOUT)
    assert inputs["weights"] == "r/models/brain/attributes/sub-01/seed-0/model.safetensors"
    with pytest.raises(ConfigError, match="example_subject"):
        make_plan(config(report={"example_subject": "09"}))
    assert plan.recon_backbone == "attributes" and plan.recon_seed == 0
    assert plan.recon_predictions(LAYOUT, "attributes", "02").endswith(
        "brain/attributes/sub-02/seed-0/predictions.npz"
    )
    assert plan.recon_feature_backbones == ["hog"]  # attributes do not come from pixels
    ridge = make_plan(config(reconstruction={"model": "ridge", "backbone": "hog"}))
    assert ridge.recon_predictions(LAYOUT, "hog", "01") == "r/models/ridge/hog/sub-01/predictions.npz"


def test_layout_checkpoints_sit_outside_the_outputs() -> None:
    assert LAYOUT.checkpoint("brain") == "r/checkpoints/brain/{backbone}/sub-{subject}/seed-{seed}/last.pt"
    assert (
        LAYOUT.checkpoint("brain_window")
        == "r/checkpoints/brain_window/{backbone}/sub-{subject}/{window}/last.pt"
    )
    study = {"source": "bids", "bids_root": "/data/ds", "stimuli_root": "/img"}
    study.update(subjects=["1"], sessions=["1"], runs=["1"])
    real = Layout.from_config(config(study=study))
    assert (real.bids_root, real.stimuli_images) == ("/data/ds", "/img")


def test_realtime_replay_choice() -> None:
    assert make_plan(config()).realtime is None  # off by default in the schema
    assert make_plan(config(realtime={"enabled": True})).realtime == ("attributes", 0)
    assert make_plan(config(realtime={"enabled": True, "seed": 1})).realtime == ("attributes", 1)
    with pytest.raises(ConfigError, match="realtime.backbone 'hog' has no brain module"):
        make_plan(config(realtime={"enabled": True, "backbone": "hog"}))
    with pytest.raises(ConfigError, match="realtime.seed 3 is not trained"):
        make_plan(config(realtime={"enabled": True, "seed": 3}))
