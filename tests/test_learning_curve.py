"""The learning-curve experiment: epochs, noise model, oracle, design, summary, tiny workflow."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, TINY_LEARNING_CURVE, snakemake_in

from megdecode.artifacts.latents import Latents
from megdecode.artifacts.learning_curve import read_scores
from megdecode.artifacts.predictions import TargetScaler
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, VAL
from megdecode.config import section_defaults
from megdecode.learning_curve.epochs import EpochGrid, EpochSimulator, NoiseModel, one_over_f_autocorrelation
from megdecode.learning_curve.experiment import (
    Design,
    _average_small_set,
    max_epochs,
    world_truth,
)
from megdecode.learning_curve.fmri import (
    Sessions,
    decoder_inputs,
    draw_betas,
)
from megdecode.learning_curve.oracle import oracle_similarity
from megdecode.learning_curve.summary import (
    draw_learning_curve,
    markdown_report,
    paired_table,
    slopes_table,
    summary_table,
    unit_means,
)
from megdecode.simulate.fmri import FmriSimParams
from megdecode.simulate.fmri import NoiseModel as FmriNoise
from megdecode.simulate.params import SimulationParams
from megdecode.simulate.stimuli import build_stimuli

GRID = EpochGrid(tmin=-0.1, tmax=0.5, sfreq=60.0, l_freq=0.1, h_freq=20.0)


@pytest.fixture(scope="module")
def study():
    cfg = section_defaults("simulation")
    cfg["stimuli"].update(n_train_concepts=12, n_test_concepts=4, exemplars_per_train_concept=4)
    cfg["stimuli"].update(exemplars_per_test_concept=2, image_size=32)
    table, _, truth = build_stimuli(SimulationParams.from_config(cfg), 0)
    return cfg, table, truth


def test_noise_model_whitens_its_own_samples():
    """Samples of S (x) T + s2 I, whitened, have identity covariance (known answer)."""
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((4, 2))
    lags = np.arange(3) / 10.0
    temporal = np.exp(-np.abs(np.subtract.outer(lags, lags)) / 0.15)
    noise = NoiseModel(mixing=mixing, temporal=temporal, white_var=0.3)
    samples = noise.sample(40000, rng)
    expected = np.kron(mixing @ mixing.T, temporal) + 0.3 * np.eye(12)
    flat = samples.reshape(len(samples), -1).astype(np.float64)
    np.testing.assert_allclose(np.cov(flat.T), expected, atol=0.08 * np.abs(expected).max())
    white = noise.whiten(samples)
    np.testing.assert_allclose(np.cov(white.T), np.eye(12), atol=0.05)


def test_one_over_f_autocorrelation_is_the_band_share_at_lag_zero():
    full = one_over_f_autocorrelation(np.array([0.0]), 1.0, (0.0, 180.0), 180.0)
    band = one_over_f_autocorrelation(np.array([0.0, 0.05]), 1.0, (0.1, 40.0), 180.0)
    assert full[0] == pytest.approx(1.0)
    assert 0 < band[1] < band[0] < 1  # part of the power, decorrelating with lag


def test_oracle_ranks_the_shown_image_first_without_noise():
    mixing = np.zeros((3, 1))
    noise = NoiseModel(mixing=mixing, temporal=np.eye(4), white_var=1.0)
    means = np.random.default_rng(1).standard_normal((5, 3, 4))
    sim = oracle_similarity(noise, means[[2, 0, 4]], means)
    assert sim.argmax(axis=1).tolist() == [2, 0, 4]
    assert sim[0, 2] == pytest.approx(0.0)


def test_epoch_simulator_draws_signal_plus_its_noise(study):
    cfg, table, truth = study
    params = SimulationParams.from_config(cfg)
    sim = EpochSimulator(params, truth, table, GRID, 0, "01")
    ids = table.loc[table.role == "exp", "image_id"].tolist()[:3]
    rngs = [np.random.default_rng(k) for k in range(600)]
    epochs, variables = sim.draw(ids * 200, rngs)
    again, _ = sim.draw(ids[:1], [np.random.default_rng(0)])
    np.testing.assert_array_equal(again[0], epochs[0])  # a trial depends only on its own generator
    assert epochs.shape == (600, len(sim.channels), len(GRID.times)) and epochs.dtype == np.float32
    assert len(sim.channels) == 272 and list(variables.columns[:3]) == ["image_id", "gain", "early_shift_s"]
    # averaging repetitions of an image converges to its (gain- and jitter-averaged) response
    mean = sim.mean_responses(ids[:1])[0]
    avg = epochs[variables.image_id.to_numpy() == ids[0]].mean(axis=0)
    assert np.corrcoef(avg.ravel(), mean.ravel())[0, 1] > 0.8


def test_world_truth_is_the_study_truth_or_rebuilt_with_the_same_codes(study):
    cfg, table, truth = study
    params = SimulationParams.from_config(cfg)
    assert world_truth(params, table, truth, 0) is truth
    nonlinear = world_truth(dataclasses.replace(params, world="nonlinear"), table, truth, 0)
    assert nonlinear["world"] == "nonlinear" and "pair_codes" in nonlinear["components"]["late"]
    np.testing.assert_allclose(
        nonlinear["components"]["early"]["weights"], truth["components"]["early"]["weights"]
    )


def test_design_keeps_test_concepts_out_and_nests_training_sets(study):
    _, table, _ = study
    small, large = (Design.draw(table, n, 10, 2, np.random.default_rng(0)) for n in (10, 30))
    test_concepts = set(table.loc[table.concept_split == "test", "concept"])
    concept = table.set_index("image_id")["concept"]
    assert not test_concepts & set(concept[large.train + large.val])
    assert not set(large.train) & set(large.val)
    assert large.train[:10] == small.train and large.val == small.val and len(large.train) == 30
    assert set(concept[large.test_large]) <= test_concepts and len(large.test_small) == 2 * 4
    trials = large.trials(table)
    assert trials.groupby("role")["index"].max().to_dict() == {
        "test_large": 7,
        "test_small": 7,
        "train": 29,
        "val": 9,
    }
    with pytest.raises(ValueError, match="exemplars_per_train_concept"):
        Design.draw(table, 100, 10, 2, np.random.default_rng(0))


def test_small_training_sets_get_more_epochs():
    assert [max_epochs(30, 20000, n) for n in (250, 500, 1000, 4000)] == [80, 40, 30, 30]
    assert max_epochs(30, 0, 250) == 30


def test_small_set_is_averaged_over_its_repetitions():
    trials = (
        pd.DataFrame(
            {"image_id": ["a", "b", "s1", "s2", "s1", "s2"], "concept": list("abxyxy")}
            | {"role": ["train_pool", VAL, TEST_LARGE, TEST_SMALL, TEST_SMALL, TEST_SMALL]}
        )
        .drop(index=2)
        .reset_index(drop=True)
    )
    trials.loc[2, "role"] = TEST_SMALL
    epochs = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    out, table = _average_small_set(epochs.copy(), trials)
    assert table["image_id"].tolist() == ["a", "b", "s1", "s2"]
    np.testing.assert_allclose(out[:, 0, 0], [0, 1, 3, 3])  # s1 = (2 + 4) / 2, s2 = 3


def test_target_scaler_only_centres_constant_dimensions():
    values = np.array([[1.0, 0.0], [3.0, 0.0], [5.0, 2.0]], np.float32)
    latents = Latents(np.array(["a", "b", "c"]), values)
    scaler = TargetScaler.fit(latents, np.array(["a", "b"]))
    np.testing.assert_allclose(scaler.transform(values[2:])[0], [3.0, 2.0], rtol=1e-6)  # SD 1; SD 0: centred


def test_unit_means_average_items_and_count_the_gallery():
    items = pd.DataFrame(
        dict(modality="MEG", world="linear", backbone="b", decoder="brain", test_set=TEST_LARGE, n_train=10)
        | dict(subject="01")
        | dict(seed=0, image_id=["x", "y", "z", "z"], top5_acc=[1.0, 0.0, 1.0, 1.0], top1_acc=0.0)
        | dict(median_rank=[0.1, 0.9, 0.2, 0.4])
    )
    unit = unit_means(items).iloc[0]
    assert unit.top5_acc == 0.75 and unit.median_rank == pytest.approx(0.3) and unit.gallery == 3


def _units(slope: float = 0.1, modality: str = "MEG") -> pd.DataFrame:
    rows = []
    world, deep, ridges = ("linear", "brain", ("ridge_bin10", "ridge_bin1"))
    if modality == "fMRI":
        world, deep, ridges = ("7T", "mlp", ("ridge", "ridge_unused"))
    for subject, seed, n in ((s, k, n) for s in ("01", "02") for k in (0, 1) for n in (100, 1000)):
        for decoder, offset in ((deep, 0.05), (ridges[0], 0.0), (ridges[1], -0.02)):
            for test_set in (VAL, TEST_LARGE):
                noise = 0.01 * (int(subject) + seed)
                value = 0.2 + offset + slope * np.log10(n / 100) + noise
                rows.append(
                    dict(modality=modality, world=world, backbone="attributes", decoder=decoder)
                    | dict(test_set=test_set)
                    | dict(n_train=n, subject=subject, seed=seed, top5_acc=value, top1_acc=value / 2)
                    | dict(median_rank=0.3, gallery=96)
                )
    return pd.DataFrame(rows)


def test_paired_difference_and_slope_have_known_values():
    units = _units(slope=0.1)
    paired = paired_table(units, 200, 0.95, 0)
    large = paired[paired.test_set == TEST_LARGE]
    assert set(large.best_ridge) == {"ridge_bin10"}  # chosen on validation
    np.testing.assert_allclose(large.deep_minus_ridge, 0.05)
    assert (large.deep_wins == 1.0).all() and set(large.deep) == {"brain"}
    slopes = slopes_table(units, 200, 0.95, 0).set_index(["decoder", "test_set"])
    assert slopes.loc[("brain", TEST_LARGE), "points_per_decade"] == pytest.approx(10.0)
    summary = summary_table(units, 200, 0.95, 0)
    row = summary[(summary.decoder == "brain") & (summary.metric == "top5_acc")]
    assert (row.chance == 5 / 96).all() and (row.ci_low <= row["mean"]).all()


def test_figure_draws_each_decoder_mean_on_a_log_axis():
    summary = summary_table(_units(), 50, 0.95, 0)
    brain = summary[summary.decoder == "brain"].drop_duplicates(["test_set", "metric"])
    ceilings = [brain.assign(decoder=d, n_train=0, backbone="") for d in ("oracle_image", "ceiling_fair")]
    fig = draw_learning_curve(pd.concat([summary, *ceilings]))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    brain = summary[(summary.decoder == "brain") & (summary.metric == "top5_acc")]
    brain = brain[brain.test_set == TEST_LARGE].sort_values("n_train")
    np.testing.assert_allclose(lines["brain"].get_ydata(), 100 * brain["mean"])
    labels = {c.get_label() for c in ax.collections}
    assert {"oracle_image", "ceiling_fair", "chance"} <= labels
    assert "ceiling_fair" not in {line.get_label() for line in ax.get_lines()}  # a level, not a curve


def test_both_modalities_share_the_tables_and_get_their_own_panels():
    """fMRI rows (world 7T, mlp vs ridge) beside MEG's: paired per modality, slopes per decoder x modality,
    a column of panels per (modality, world), fMRI dashed."""
    units = pd.concat([_units(0.1), _units(0.05, modality="fMRI")], ignore_index=True)
    paired = paired_table(units, 100, 0.95, 0)
    fmri = paired[(paired.modality == "fMRI") & (paired.test_set == TEST_LARGE)]
    assert set(fmri.deep) == {"mlp"} and set(fmri.best_ridge) == {"ridge"}
    np.testing.assert_allclose(fmri.deep_minus_ridge, 0.05)
    slopes = slopes_table(units, 100, 0.95, 0).set_index(["modality", "decoder", "test_set"])
    assert slopes.loc[("fMRI", "mlp", TEST_LARGE), "points_per_decade"] == pytest.approx(5.0)
    assert slopes.loc[("MEG", "brain", TEST_LARGE), "points_per_decade"] == pytest.approx(10.0)
    summary = summary_table(units, 50, 0.95, 0)
    fig = draw_learning_curve(summary)
    assert [ax.get_title() for ax in fig.axes] == [
        "MEG, linear world, test large",
        "fMRI, simulated 7T, test large",
    ]
    mlp = {line.get_label(): line for line in fig.axes[1].get_lines()}["mlp"]
    assert mlp.get_linestyle() == "--"
    report = markdown_report(summary, paired, slopes_table(units, 10, 0.95, 0), 0.95)
    assert "## fMRI, simulated 7T, attributes, test large" in report and "| mlp - best ridge |" in report


def test_eeg_rows_join_every_table_without_moving_the_others_intervals():
    """EEG rows (brain vs ridge, MEG's worlds) are paired and sloped like MEG's, get their own panel between
    MEG's and fMRI's with dotted lines, and adding them leaves MEG's and fMRI's intervals unchanged."""
    two = pd.concat([_units(0.1), _units(0.05, modality="fMRI")], ignore_index=True)
    three = pd.concat([two, _units(0.02).assign(modality="EEG")], ignore_index=True)
    paired = paired_table(three, 100, 0.95, 0)
    eeg = paired[(paired.modality == "EEG") & (paired.test_set == TEST_LARGE)]
    assert set(eeg.deep) == {"brain"} and set(eeg.best_ridge) == {"ridge_bin10"}
    np.testing.assert_allclose(eeg.deep_minus_ridge, 0.05)
    slopes = slopes_table(three, 100, 0.95, 0).set_index(["modality", "decoder", "test_set"])
    assert slopes.loc[("EEG", "brain", TEST_LARGE), "points_per_decade"] == pytest.approx(2.0)
    for table in (paired_table, slopes_table, summary_table):
        before, after = table(two, 100, 0.95, 0), table(three, 100, 0.95, 0)
        kept = after[after.modality != "EEG"].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, before, check_like=True)
    fig = draw_learning_curve(summary_table(three, 50, 0.95, 0))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "MEG, linear world, test large",
        "EEG, linear world, test large",
        "fMRI, simulated 7T, test large",
    ]
    brain = {line.get_label(): line for line in fig.axes[1].get_lines()}["brain"]
    assert brain.get_linestyle() == ":"


def test_fmri_trials_depend_only_on_their_own_generator_and_have_the_noise_model():
    p = FmriSimParams.from_dict(section_defaults("fmri")["simulation"])
    sessions = Sessions.draw(p, 50, (0, "test"))
    loadings = np.random.default_rng(1).standard_normal((50, 3)) * 0.4
    noise = FmriNoise(loadings, 0.5)
    responses = np.zeros((4000, 50))
    rngs = [np.random.default_rng(k) for k in range(4000)]
    betas, session = draw_betas(responses, sessions, p, noise, rngs)
    again, _ = draw_betas(responses[:1], sessions, p, noise, [np.random.default_rng(0)])
    np.testing.assert_array_equal(again[0], betas[0])
    assert set(session) == set(range(p.n_sessions))
    clean = (betas - sessions.offset[session]) / sessions.gain[session]  # the simulator's noise
    expected = loadings @ loadings.T + 0.5 * np.eye(50)
    assert np.abs(np.cov(clean.T) - expected).max() < 0.12


def test_fmri_zscoring_never_sees_test_trials():
    trials = pd.DataFrame(
        dict(image_id=["a", "b", "c", "d", "t1", "t2", "t2"], session="01")
        | dict(role=["train", "train", "val", "val", TEST_LARGE, TEST_SMALL, TEST_SMALL])
    )
    betas = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    x, ids = decoder_inputs(betas, trials)
    moved = betas.copy()
    moved[4:] += 100.0  # test trials far away: training inputs unchanged
    x2, _ = decoder_inputs(moved, trials)
    np.testing.assert_array_equal(x["train"], x2["train"])
    np.testing.assert_allclose(
        x["train"].tolist() + x["val"].tolist(), (betas[:4] - betas[:4].mean(0)) / betas[:4].std(0), rtol=1e-5
    )
    assert ids[TEST_SMALL].tolist() == ["t2"] and x[TEST_SMALL].shape == (1, 3)


@pytest.mark.slow
def test_tiny_learning_curve_workflow(tiny_learning_curve: Path):
    """The figure/table contract of `snakemake learning_curve` (config/learning-curve.yaml made tiny by
    config/tiny.yaml and config/tiny-learning-curve.yaml: MEG, fMRI and EEG); oracle >= ridge >= chance
    (linear world)."""
    results = tiny_learning_curve
    lc = results / "learning_curve"
    for name in ("summary.tsv", "paired.tsv", "slopes.tsv", "learning_curve.md", "learning_curve.png"):
        assert (lc / name).stat().st_size > 0, name
    scores = read_scores(lc / "linear" / "sub-01_seed-0_n-200_scores.tsv")
    assert set(scores.decoder) == {"brain", "ridge_bin10", "oracle_image", "ceiling_fair"}
    trials = pd.read_csv(lc / "linear" / "sub-01_seed-0_n-200_trials.tsv", sep="\t")
    assert {"gain", "early_shift_s", "late_shift_0_s"} <= set(trials.columns)
    summary = pd.read_csv(lc / "summary.tsv", sep="\t", keep_default_na=False)
    top5 = summary[(summary.metric == "top5_acc") & (summary.test_set == TEST_LARGE)]
    linear = top5[(top5.world == "linear") & (top5.modality == "MEG")].set_index(["decoder", "n_train"])[
        "mean"
    ]
    chance = top5["chance"].iloc[0]
    assert linear[("oracle_image", 0)] >= linear[("ridge_bin10", 200)] > chance
    assert set(summary.n_units[summary.n_train > 0]) == {2}
    assert set(summary.loc[summary.decoder == "ceiling_fair", "n_units"]) == {2}
    report = (lc / "learning_curve.md").read_text()
    assert "nonlinear world, attributes, test large" in report and "Log-linear slopes" in report
    assert "fair ceiling" in report and "`ceiling_fair`" in report
    # the fMRI curve: its own files (with a modality column; MEG's keep their columns), both modalities in
    # every table, and the fMRI ridge above chance on the large set at the largest size
    assert "modality" not in pd.read_csv(lc / "linear" / "sub-01_seed-0_n-200_scores.tsv", sep="\t").columns
    fmri_scores = read_scores(lc / "fmri" / "sub-01_seed-1_n-200_scores.tsv")
    assert set(fmri_scores.decoder) == {"ridge", "mlp", "oracle_image"} and set(fmri_scores.modality) == {
        "fMRI"
    }
    fmri_trials = pd.read_csv(lc / "fmri" / "sub-01_seed-1_n-200_trials.tsv", sep="\t")
    assert {"session", "role"} <= set(fmri_trials.columns)
    for name in ("summary.tsv", "paired.tsv", "slopes.tsv"):
        table = pd.read_csv(lc / name, sep="\t", keep_default_na=False)
        assert set(table.modality) == {"MEG", "fMRI", "EEG"}, name
        assert set(table.loc[table.modality == "EEG", "world"]) == {"linear", "nonlinear"}, name
    fmri = top5[top5.modality == "fMRI"].set_index(["decoder", "n_train"])["mean"]
    assert fmri[("ridge", 200)] > top5.loc[top5.modality == "fMRI", "chance"].iloc[0]
    assert {("mlp", 100), ("mlp", 200), ("oracle_image", 0)} <= set(fmri.index)
    assert "fMRI, simulated 7T, attributes, test large" in report
    # the EEG curve: its own files per world (modality EEG, the neighbours of each trial), ridge and the brain
    # module paired, the image oracle as its ceiling, ridge above chance on the large set at the largest size
    eeg_scores = read_scores(lc / "eeg" / "linear" / "sub-01_seed-0_n-200_scores.tsv")
    assert set(eeg_scores.decoder) == {"brain", "ridge_bin10", "oracle_image", "ceiling_fair"}
    assert set(eeg_scores.modality) == {"EEG"}
    eeg_trials = pd.read_csv(lc / "eeg" / "linear" / "sub-01_seed-0_n-200_trials.tsv", sep="\t")
    assert {"sequence_position", "image_at_-1", "image_at_+1", "gain"} <= set(eeg_trials.columns)
    eeg = top5[(top5.modality == "EEG") & (top5.world == "linear")].set_index(["decoder", "n_train"])["mean"]
    assert eeg[("oracle_image", 0)] >= eeg[("ridge_bin10", 200)] > chance
    paired = pd.read_csv(lc / "paired.tsv", sep="\t", keep_default_na=False)
    assert set(paired.loc[paired.modality == "EEG", "deep"]) == {"brain"}
    assert "EEG, linear world, attributes, test large" in report
    # a finished experiment has nothing left to do
    dry = snakemake_in(results.parent, *TINY_LEARNING_CURVE, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_plan_checks_the_learning_curve_backbones_only_when_asked():
    from megdecode.config import ConfigError, load_config
    from megdecode.plan import make_plan

    config = load_config(REPO / "config.yaml")
    assert make_plan(config).learning_curve_backbones() == ["attributes"]
    other = {**config, "learning_curve": {**config["learning_curve"], "backbones": ["clip"]}}
    plan = make_plan(other)  # a config that never runs the experiment is not refused
    with pytest.raises(ConfigError, match=r"learning_curve.backbones names \['clip'\]"):
        plan.learning_curve_backbones()


def test_the_curve_calls_the_package_only_through_its_seams() -> None:
    """Every part of megdecode the learning curve imports is one of its documented seams, and every seam is
    used (megdecode.learning_curve.SEAMS)."""
    import ast

    from megdecode.learning_curve import SEAMS

    used = set()
    for path in (REPO / "src" / "megdecode" / "learning_curve").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("megdecode."):
                used.add(node.module.split(".")[1])
    assert used - {"learning_curve"} == set(SEAMS)
