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
from megdecode.simulate.fmri import simulate_fmri_subject, simulate_subject

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
    assert len(truth["voxels"]["ncsnr"]) == 200


def test_simulation_is_deterministic_and_seeded(study: Path, subject) -> None:
    again, _ = simulate_fmri_subject(study / "stimuli.tsv", study / "images", "01", SIM, seed=0)
    np.testing.assert_array_equal(again.betas, subject[0].betas)
    other, _ = simulate_fmri_subject(study / "stimuli.tsv", study / "images", "02", SIM, seed=0)
    assert other.betas.shape != subject[0].betas.shape or not np.allclose(other.betas, subject[0].betas)


def test_known_mixture_of_tunings(study: Path) -> None:
    """Without noise, a concept (its attribute embeddings and own code: 70% of the feature space) explains
    most of the higher voxels' image-to-image variance but not all of it (the image statistics' share), and
    the early voxels' far less (exemplars differ in position, size, background): tuning is spread over image
    features, not a read-out of the attribute one-hot."""
    clean = {**SIM, "snr_median_early": 1e3, "snr_median_high": 1e3, "snr_spread": 0.0, "neural_noise": 0.0}
    clean |= {"session_offset": 0.0, "session_gain": 0.0}
    fmri, _ = simulate_fmri_subject(study / "stimuli.tsv", study / "images", "01", clean, seed=0)
    trials = fmri.trials
    mean = pd.DataFrame(fmri.betas).groupby(trials["image_id"].to_numpy()).mean()
    concept = trials.groupby("image_id")["concept"].first()[mean.index].to_numpy()
    between = mean.groupby(concept).transform("mean")
    r2 = 1 - ((mean - between) ** 2).sum() / ((mean - mean.mean()) ** 2).sum()
    roi = np.asarray(fmri.roi)
    assert 0.6 < r2[roi == "HVC"].median() < 0.95
    assert r2[roi == "EVC"].median() < r2[roi == "HVC"].median() - 0.2


def test_default_world_matches_nsd_per_voxel(study: Path) -> None:
    """The schema defaults draw NSD's nsdgeneral: 13,931 voxels, median ncsnr 0.355 and mean / median 1.07
    (docs/fmri.md, Calibration); at the calibrated neural noise the median stays NSD's."""
    from megdecode.simulate.fmri_calibration import NSD_NCSNR_MEAN_OVER_MEDIAN, NSD_NCSNR_MEDIAN

    sim = simulate_subject(
        study / "stimuli.tsv", study / "images", "01", section_defaults("fmri", "simulation"), 0
    )
    drawn, ncsnr = sim.code.ncsnr_target, sim.code.ncsnr
    assert len(ncsnr) == 13931 == sim.fmri.n_voxels
    assert np.median(drawn) == pytest.approx(NSD_NCSNR_MEDIAN, rel=0.03)
    assert drawn.mean() / np.median(drawn) == pytest.approx(NSD_NCSNR_MEAN_OVER_MEDIAN, rel=0.03)
    # the calibrated neural noise lowers the upper tail only: the median stays NSD's, few voxels change
    assert np.median(ncsnr) == pytest.approx(NSD_NCSNR_MEDIAN, rel=0.03)
    assert 0 < sim.code.truth["ncsnr_lowered"] < 0.15 * len(ncsnr)


def test_neural_noise_limits_what_averaging_voxels_recovers(study: Path) -> None:
    """More neural noise (where the signal lives) lowers the ideal observer's d' although each voxel's ncsnr
    stays as drawn: the population's information is not the per-voxel reliability times the voxel count."""
    from megdecode.simulate.fmri_observer import pairwise_dprime

    many = {**SIM, "n_early_voxels": 2000, "n_high_voxels": 2000}  # enough to average measurement noise away
    code = simulate_subject(study / "stimuli.tsv", study / "images", "01", many, 0).code
    ids = code.image_ids[:20]
    low, high = code.with_neural_noise(0.5), code.with_neural_noise(2.0)
    assert np.median(low.ncsnr) == pytest.approx(np.median(high.ncsnr), rel=0.05)
    d_low = pairwise_dprime(low, ids, low.concept_names)
    d_high = pairwise_dprime(high, ids, high.concept_names)
    assert np.median(d_high) < 0.6 * np.median(d_low)


def test_ideal_observer_equals_the_dense_gaussian(study: Path) -> None:
    """The factored likelihood (Woodbury) equals the dense one; an unknown concept's code marginalised."""
    from scipy.stats import multivariate_normal

    from megdecode.simulate.fmri_observer import log_likelihoods

    small = {**SIM, "n_early_voxels": 30, "n_high_voxels": 20}
    code = simulate_subject(study / "stimuli.tsv", study / "images", "01", small, 0).code
    ids = code.image_ids[:6]
    known = code.concepts[code.rows(ids)][:3]  # the other images' concepts are unknown to the observer
    x = np.random.default_rng(1).standard_normal((4, 50))
    got = log_likelihoods(code, x, ids, 2, known_concepts=known)
    noise = code.noise.loadings @ code.noise.loadings.T + code.noise.white * np.eye(50)
    concept = (code.snr[:, None] * code.concept_loading) @ (code.snr[:, None] * code.concept_loading).T
    for j, row in enumerate(code.rows(ids)):
        is_known = code.concepts[row] in known
        mean = code.snr * (code.signal_of(np.array([row]))[0] if is_known else code.learnable[row])
        cov = noise / 2 + (0 if is_known else concept)
        expected = multivariate_normal(mean, cov).logpdf(x)
        offset = -0.5 * 50 * np.log(2 * np.pi)
        np.testing.assert_allclose(got[:, j], expected - offset, rtol=1e-8)


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
        ("MEG", "brain"), ("MEG", "ridge"), ("fMRI", "mlp"), ("fMRI", "ridge"), ("fMRI", "ceiling")
    }  # fmt: skip
    ceiling = small[small["model"] == "ceiling"]
    assert set(ceiling["subject"]) == {"01", "mean"} and (ceiling["value"] >= ceiling["chance"]).all()
    assert small["best_on_val"].any() and small["val_value"].notna().any()  # the best decoder chosen on val
    assert set(small.loc[small["modality"] == "MEG", "backbone"]) == {"colour_hist", "attributes"}
    assert (results / "figures" / "meg_vs_fmri.png").stat().st_size > 0
    recon = pd.read_csv(results / "tables" / "meg_vs_fmri_reconstruction.tsv", sep="\t")
    assert set(recon["modality"]) == {"MEG", "fMRI"} and {"pixcorr", "ssim"} <= set(recon["metric"])
    assert set(recon.loc[recon["metric"] == "pixcorr", "level"]) == {"low"}
    readout = recon[recon["metric"] == "two_way_attribute_readout"]  # the high-level half, both modalities
    assert set(readout["modality"]) == {"MEG", "fMRI"} and set(readout["level"]) == {"simulation"}
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
        feature_level({"kind": "huggingface_vision", "options": {"random_init": {"hidden_size": 8}}})
        == "untrained"
    )


def test_comparison_table_and_level_summary(tmp_path: Path) -> None:
    """Per-subject CIs reach the table; the best decoder per backbone is chosen on validation (here ridge,
    although the brain module is better on test); an untrained backbone counts as neither level."""
    from megdecode.artifacts.evaluation_tables import RETRIEVAL_COLUMNS
    from megdecode.reporting.modalities import compare_modalities, comparison_markdown, level_summary

    def table(path, model, head, test, val=None):
        rows = [
            dict(subject=s, backbone=b, model=model, head=head, test_set=test_set, window="full",
                 metric="top5_acc", value=v, ci_low=v - 0.1, ci_high=v + 0.1, chance=0.2)
            for test_set, values in (("test_small", test), ("val", val or {}))
            for b, per_subject in values.items() for s, v in per_subject.items()
        ]  # fmt: skip
        pd.DataFrame(rows, columns=RETRIEVAL_COLUMNS).to_csv(path, sep="\t", index=False)
        return path

    both = {"1": 0.5, "2": 0.5}
    meg = [
        table(
            tmp_path / "brain.tsv",
            "brain",
            "clip",
            {"low": {"1": 0.3, "2": 0.5}, "high": {"1": 0.9, "2": 0.7}, "random": both},
            {"low": {"1": 0.3, "2": 0.3}, "high": both, "random": both},
        ),
        table(
            tmp_path / "brain_mse.tsv", "brain", "mse", {"low": {"1": 1.0, "2": 1.0}}
        ),  # not the scored head
        table(
            tmp_path / "ridge.tsv",
            "ridge",
            "mse",
            {"low": {"1": 0.2, "2": 0.2}, "only_meg": {"1": 0.9}},
            {"low": both},  # ridge wins on validation
        ),
    ]
    fmri = [
        table(
            tmp_path / "f.tsv",
            "mlp",
            "clip",
            {"low": {"1": 0.8, "2": 1.0}, "high": {"1": 0.6, "2": 0.6}, "random": both},
            {"low": both, "high": both, "random": both},
        )
    ]
    levels = {"low": "low", "high": "high", "random": "untrained"}
    out = compare_modalities(meg, fmri, levels)
    assert set(out["backbone"]) == {"low", "high", "random"}  # only backbones scored in both modalities
    brain_low = out.query("model == 'brain' and backbone == 'low' and test_set == 'test_small'")
    mean = brain_low[brain_low["subject"] == "mean"].iloc[0]
    assert mean["value"] == pytest.approx(0.4) and mean["normalised"] == pytest.approx(0.25)
    assert mean["val_value"] == pytest.approx(0.3) and not mean["best_on_val"]
    assert brain_low.set_index("subject").loc["1", "ci_low"] == pytest.approx(0.2)
    summary = level_summary(out, "test_small", "top5_acc")
    assert summary.loc["MEG", "low"] == pytest.approx(0.0)  # ridge, chosen on val, is at chance on test
    assert summary.loc["fMRI", "low"] == pytest.approx(0.875) and summary.loc["MEG", "high"] == pytest.approx(
        0.75
    )
    assert list(summary.columns) == ["low", "high"]  # the untrained backbone is neither
    text = comparison_markdown(out, "test_small", "top5_acc")
    assert "| low | low | 40.0 ± 14.1 | 20.0 ± 0.0* | 90.0 ± 14.1* | 20.0 |" in text
    assert "| low | MEG brain module | 30.0 [20.0, 40.0] | 50.0 [40.0, 50.0+" not in text
    assert "| low | MEG brain module | 30.0 [20.0, 40.0] | 50.0 [40.0, 60.0] |" in text
