"""The fMRI modality: simulated 7T study, decoders (ridge, MLP), plan, comparison, workflow end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake

from megdecode.artifacts.fmri import read_fmri_subject, write_fmri_subject
from megdecode.artifacts.predictions import read_predictions
from megdecode.artifacts.splits import LeakageError
from megdecode.config import ConfigError, section_defaults, validate_config
from megdecode.io import read_json
from megdecode.latents import compute_latents
from megdecode.plan import make_plan
from megdecode.simulate import simulate_stimuli
from megdecode.simulate.fmri import simulate_fmri_subject

SIM = {**section_defaults("fmri", "simulation"), "n_early_voxels": 120, "n_high_voxels": 80}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated stimulus set with colour-histogram and attribute latents."""
    root = tmp_path_factory.mktemp("fmri_study")
    cfg = section_defaults("simulation")
    cfg["stimuli"].update(
        n_train_concepts=24, n_test_concepts=8, exemplars_per_train_concept=4, exemplars_per_test_concept=2
    )
    stim = {k: v for k, v in cfg.items() if k in ("stimuli", "responses", "trigger_codes")}
    simulate_stimuli(root / "stimuli.tsv", root / "images", root / "truth.json", stim, 0)
    backbones = {
        "colour_hist": {
            "kind": "handcrafted",
            "options": {"features": ["colour_histogram"], "colour_bins": 4},
        },
        "attributes": {"kind": "attributes", "options": {"columns": ["shape", "colour", "texture"]}},
    }
    for name, spec in validate_config({"backbones": backbones})["backbones"].items():
        compute_latents(name, spec, root / "stimuli.tsv", root / "images", root / "latents" / name, threads=1)
    return root


@pytest.fixture(scope="module")
def subject(study: Path):
    return simulate_fmri_subject(study / "stimuli.tsv", study / "images", "01", SIM, seed=0)


def test_simulated_design_is_nsd_like_and_leak_free(study: Path, subject) -> None:
    fmri, truth = subject
    stimuli = pd.read_csv(study / "stimuli.tsv", sep="\t", dtype=str)
    trials = fmri.trials
    assert fmri.betas.shape == (len(trials), 200) and fmri.betas.dtype == np.float32
    counts = trials.groupby("image_id").size()
    assert counts.max() == 3 and counts.min() >= 1  # each image up to 3 times
    test_ids = set(trials.loc[trials["split"] == "test", "image_id"])
    assert test_ids == set(stimuli.loc[stimuli["role"] == "test", "image_id"])  # the MEG study's test images
    assert (counts[sorted(test_ids)] == 3).all()
    assert set(trials["session"]) == {"01", "02", "03", "04"}
    assert {"train", "val", "test"} == set(trials["split"])
    # repetitions count up in presentation order, within each image
    assert (
        trials.groupby("image_id")["repetition"].apply(lambda r: list(r) == list(range(1, len(r) + 1)))
    ).all()
    assert fmri.roi.tolist().count("EVC") == 120 and len(truth["prf"]["x"]) == 120
    assert 0 < truth["noise_ceiling_single_trial_median"] < truth["noise_ceiling_3_trials_median"] < 1


def test_simulation_is_deterministic_and_seeded(study: Path, subject) -> None:
    again, _ = simulate_fmri_subject(study / "stimuli.tsv", study / "images", "01", SIM, seed=0)
    np.testing.assert_array_equal(again.betas, subject[0].betas)
    other, _ = simulate_fmri_subject(study / "stimuli.tsv", study / "images", "02", SIM, seed=0)
    assert other.betas.shape != subject[0].betas.shape or not np.allclose(other.betas, subject[0].betas)


def test_known_mixture_of_tunings(study: Path) -> None:
    """Without noise, concepts explain the higher voxels' responses (attribute tuning, 15% low-level share)
    almost fully and the early voxels' only in part (exemplars differ in position, size, background)."""
    clean = {**SIM, "snr_median": 1000.0, "snr_spread": 0.0, "session_offset": 0.0, "session_gain": 0.0}
    fmri, _ = simulate_fmri_subject(study / "stimuli.tsv", study / "images", "01", clean, seed=0)
    trials = fmri.trials
    mean = pd.DataFrame(fmri.betas).groupby(trials["image_id"].to_numpy()).mean()
    concept = trials.groupby("image_id")["concept"].first()[mean.index].to_numpy()
    between = mean.groupby(concept).transform("mean")
    r2 = 1 - ((mean - between) ** 2).sum() / ((mean - mean.mean()) ** 2).sum()
    roi = np.asarray(fmri.roi)
    assert r2[roi == "HVC"].median() > 0.95
    assert r2[roi == "EVC"].median() < 0.7


def test_decoders_write_shared_predictions(study: Path, subject, tmp_path: Path) -> None:
    from megdecode.training.fmri import train_fmri_ridge
    from megdecode.training.fmri_mlp import train_fmri_mlp

    write_fmri_subject(tmp_path / "sub", subject[0])
    latents = study / "latents" / "attributes"
    train_fmri_ridge(
        tmp_path / "sub", latents, tmp_path / "ridge.npz", tmp_path / "model.npz", {"alphas": [10.0, 1e3]}
    )
    training = {**section_defaults("fmri", "mlp_training"), "max_epochs": 15}
    mlp = section_defaults("fmri", "mlp")
    history = train_fmri_mlp(
        tmp_path / "sub", latents, tmp_path / "mlp.npz", tmp_path / "h.tsv", mlp, training, 0
    )
    assert 1 <= len(history) <= 15
    ridge, net = read_predictions(tmp_path / "ridge.npz"), read_predictions(tmp_path / "mlp.npz")
    assert ridge.head_names == ["mse"] and net.head_names == ["clip", "mse"]
    n_test = (subject[0].trials["split"] == "test").sum()
    assert len(net.image_ids["test_small"]) == n_test // 3 and len(net.image_ids["test_large"]) == n_test
    # test_small is the repetition average: same ids as the test images, each once
    assert sorted(set(net.image_ids["test_large"])) == sorted(net.image_ids["test_small"])
    again = train_fmri_mlp(
        tmp_path / "sub", latents, tmp_path / "mlp2.npz", tmp_path / "h2.tsv", mlp, training, 0
    )
    pd.testing.assert_frame_equal(history.drop(columns="seconds"), again.drop(columns="seconds"))


def test_a_test_concept_in_training_is_refused(subject, tmp_path: Path) -> None:
    fmri = subject[0]
    write_fmri_subject(tmp_path, fmri)
    trials = pd.read_csv(tmp_path / "trials.tsv", sep="\t", dtype=str)
    test_concept = trials.loc[trials["split"] == "test", "concept"].iloc[0]
    trials.loc[trials.index[trials["split"] == "train"][0], "concept"] = test_concept
    trials.to_csv(tmp_path / "trials.tsv", sep="\t", index=False)
    with pytest.raises(LeakageError, match=str(tmp_path / "trials.tsv")):
        read_fmri_subject(tmp_path)


def _config(**fmri):
    return validate_config(
        {
            "study": {"source": "simulated", "subjects": ["01", "02"]},
            "backbones": {"hog": {"kind": "handcrafted"}, "attributes": {"kind": "attributes"}},
            "fmri": {"enabled": True, **fmri},
        }
    )


def test_default_config_plans_no_fmri() -> None:
    from megdecode.config import load_config

    assert make_plan(load_config(REPO / "config.yaml")).fmri is None
    demo = make_plan(load_config(REPO / "config.yaml", REPO / "config" / "fmri-demo.yaml"))
    assert demo.fmri is not None and demo.fmri.backbones == [
        "colour_hist",
        "hog",
        "attributes",
        "dinov2_random",
    ]


def test_plan_of_the_fmri_companion() -> None:
    plan = make_plan(_config(backbones=["attributes"], subjects=["A"])).fmri
    assert (plan.subjects, plan.backbones, plan.models) == (["A"], ["attributes"], ["ridge", "mlp"])
    with pytest.raises(ConfigError, match="needs study.source 'nsd'"):
        make_plan(_config(source="nsd"))
    with pytest.raises(ConfigError, match="fmri.backbones"):
        make_plan(_config(backbones=["clip"]))
    with pytest.raises(ConfigError, match="did you mean 'n_sessions'"):
        _config(simulation={"n_session": 2})


@pytest.mark.slow
def test_workflow_runs_the_fmri_companion_and_compares(tiny_results: Path, tmp_path: Path) -> None:
    """fMRI on top of the tiny MEG run: only fMRI jobs run; the comparison has both modalities."""
    cfg = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    cfg["fmri"] = {
        "enabled": True,
        "subjects": ["01"],  # one fMRI subject keeps the test short
        "backbones": ["colour_hist", "attributes"],
        "mlp_training": {"max_epochs": 20},
        "simulation": {"n_early_voxels": 150, "n_high_voxels": 100},
    }
    path = tmp_path / "tiny-fmri.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # a copy: the session's tiny run is compared with other runs (tests/test_slurm.py) and must stay as it is
    results = tmp_path / "results"
    shutil.copytree(tiny_results, results, symlinks=True)
    proc = run_snakemake(results, "all", configfile=path)
    ran = proc.stdout + proc.stderr
    assert "rule train_brain:" not in ran and "rule preprocess_subject:" not in ran  # MEG results reused
    table = pd.read_csv(results / "tables" / "meg_vs_fmri.tsv", sep="\t")
    small = table.query("test_set == 'test_small' and metric == 'top5_acc'")
    assert set(zip(small["modality"], small["model"], strict=True)) == {
        ("MEG", "brain"), ("MEG", "ridge"), ("fMRI", "mlp"), ("fMRI", "ridge")
    }  # fmt: skip
    assert set(small.loc[small["modality"] == "MEG", "backbone"]) == {"colour_hist", "attributes"}
    assert (results / "figures" / "meg_vs_fmri.png").stat().st_size > 0
    recon = pd.read_csv(results / "tables" / "meg_vs_fmri_reconstruction.tsv", sep="\t")
    assert set(recon["modality"]) == {"MEG", "fMRI"} and {"pixcorr", "ssim"} <= set(recon["metric"])
    assert set(recon.loc[recon["metric"] == "pixcorr", "level"]) == {"low"}
    readout = recon[recon["metric"] == "two_way_semantic_readout"]  # the high-level half, both modalities
    assert set(readout["modality"]) == {"MEG", "fMRI"} and set(readout["level"]) == {"high"}
    assert read_json(results / "fmri" / "ground_truth" / "sub-01.json")["subject"] == "01"
    dry = run_snakemake(results, "all", "-n", configfile=path)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_feature_levels_of_backbones() -> None:
    from megdecode.plan import feature_level

    assert feature_level({"kind": "handcrafted"}) == "low"
    assert feature_level({"kind": "attributes"}) == "high"
    assert (
        feature_level({"kind": "huggingface_vision", "options": {"model": "facebook/dinov2-giant"}}) == "high"
    )
    assert (
        feature_level({"kind": "huggingface_vision", "options": {"random_init": {"hidden_size": 8}}}) == "low"
    )


def test_comparison_table_and_level_summary(tmp_path: Path) -> None:
    from megdecode.artifacts.evaluation_tables import RETRIEVAL_COLUMNS
    from megdecode.reporting.modalities import compare_modalities, comparison_markdown, level_summary

    def table(path, model, head, values):
        rows = [
            dict(subject=s, backbone=b, model=model, head=head, test_set="test_small", window="full",
                 metric="top5_acc", value=v, ci_low=v, ci_high=v, chance=0.2)
            for b, per_subject in values.items() for s, v in per_subject.items()
        ]  # fmt: skip
        pd.DataFrame(rows, columns=RETRIEVAL_COLUMNS).to_csv(path, sep="\t", index=False)
        return path

    meg = [
        table(
            tmp_path / "brain.tsv",
            "brain",
            "clip",
            {"low": {"1": 0.3, "2": 0.5}, "high": {"1": 0.9, "2": 0.7}},
        ),
        table(
            tmp_path / "brain_mse.tsv", "brain", "mse", {"low": {"1": 1.0, "2": 1.0}}
        ),  # not the scored head
        table(tmp_path / "ridge.tsv", "ridge", "mse", {"low": {"1": 0.2, "2": 0.2}, "only_meg": {"1": 0.9}}),
    ]
    fmri = [
        table(tmp_path / "f.tsv", "mlp", "clip", {"low": {"1": 0.8, "2": 1.0}, "high": {"1": 0.6, "2": 0.6}})
    ]
    out = compare_modalities(meg, fmri, {"low": "low", "high": "high"})
    assert set(out["backbone"]) == {"low", "high"}  # only backbones scored in both modalities
    brain_low = out.query("model == 'brain' and backbone == 'low'").iloc[0]
    assert brain_low["mean"] == pytest.approx(0.4) and brain_low["normalised"] == pytest.approx(0.25)
    summary = level_summary(out, "test_small", "top5_acc")
    assert summary.loc["MEG", "low"] == pytest.approx(0.25)  # best per backbone: brain 0.4 beats ridge 0.2
    assert summary.loc["fMRI", "low"] == pytest.approx(0.875) and summary.loc["MEG", "high"] == pytest.approx(
        0.75
    )
    assert "| low | low | 40.0 ± 14.1 | 20.0 ± 0.0 | 90.0 ± 14.1 | 20.0 |" in comparison_markdown(
        out, "test_small", "top5_acc"
    )
