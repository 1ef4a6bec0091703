"""The simulator's two worlds (simulation.responses.world): linear (control) and nonlinear."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake
from test_simulate import SMALL, small_cfg

from megdecode.config import section_defaults
from megdecode.io import read_json, read_tsv
from megdecode.seeds import derive_rng
from megdecode.simulate import SimulationParams, simulate_stimuli, simulate_subject
from megdecode.simulate.responses import evoked_sources, trial_amplitudes, trial_variables
from megdecode.simulate.stimuli import (
    LOW_LEVEL_FEATURES,
    build_stimuli,
    early_code,
    late_code,
    naka_rushton,
)

#: every (shape, colour, texture) combination is a concept: pairs of concepts share (shape, colour)
ALL_COMBOS = {
    "shapes": ["circle", "square"],
    "colours": ["red", "blue"],
    "textures": ["solid", "stripes"],
    "n_train_concepts": 6,
    "n_test_concepts": 2,
    "exemplars_per_train_concept": 2,
    "exemplars_per_test_concept": 2,
    "n_catch_images": 1,
}


def world_cfg(world: str, **changes: object) -> dict:
    """A validated ``simulation`` section of the small study in ``world``."""
    responses = {**changes.pop("responses", {}), "world": world}
    return small_cfg(**changes, responses=responses)


def params_of(world: str, **changes: object) -> SimulationParams:
    return SimulationParams.from_config(world_cfg(world, **changes))


def test_schema_defaults_are_the_issue_values() -> None:
    resp = section_defaults("simulation")["responses"]
    assert resp["world"] == "linear"  # the embedded default stays the control
    assert resp["latency_jitter_sd"] == 0.01 and resp["gain_sd"] == 0.2
    assert resp["nonlinear"] == {
        "early_jitter_sd": 0.015,
        "late_jitter_sd": 0.04,
        "gain_sd": 0.3,
        "naka_rushton": True,
        "conjunctive_codes": True,
    }
    with pytest.raises(Exception, match="world"):
        world_cfg("quadratic")


# --- Naka-Rushton early coding ------------------------------------------------------------------


def test_naka_rushton_known_values() -> None:
    c50 = np.array([0.2, 1.5])
    np.testing.assert_allclose(naka_rushton(c50, c50), [0.5, 0.5])
    np.testing.assert_allclose(naka_rushton(3 * c50, c50), [0.9, 0.9])  # 9 / (9 + 1)
    np.testing.assert_allclose(naka_rushton(c50 / 3, c50), [0.1, 0.1])  # 1 / (1 + 9)
    np.testing.assert_allclose(naka_rushton(np.zeros(2), c50), [0, 0])
    assert np.all(naka_rushton(1e4 * c50, c50) > 0.999999)
    c = np.linspace(0, 5, 50)
    assert np.all(np.diff(naka_rushton(c, 1.0)) > 0)
    with pytest.raises(ValueError, match="c50"):
        naka_rushton(c, 0.0)


def test_naka_rushton_c50_at_each_statistics_median() -> None:
    params = params_of("nonlinear")
    table, _, truth = build_stimuli(params, seed=4)
    shown = table.loc[table.role != "catch", "image_id"]
    feats = np.array([truth["image_features"][i] for i in shown])
    nr = truth["components"]["early"]["naka_rushton"]
    offset = np.array(nr["offset"])
    # centroids (signed, image-centre origin) are measured from the image edge; the others are >= 0
    signed = [LOW_LEVEL_FEATURES.index(f) for f in ("centroid_x", "centroid_y")]
    assert offset[signed].tolist() == [1.0, 1.0] and np.delete(offset, signed).tolist() == [0.0] * 6
    np.testing.assert_allclose(nr["c50"], np.median(feats + offset, axis=0), atol=1e-8)
    codes = np.stack([early_code(truth, i) for i in shown])
    np.testing.assert_allclose(codes.mean(axis=0), 0, atol=1e-6)  # standardised like the linear z-scores
    np.testing.assert_allclose(codes.std(axis=0), 1, atol=1e-4)
    # an image at the median of a statistic sits at half saturation
    k = LOW_LEVEL_FEATURES.index("object_area")
    at_median = np.abs(feats[:, k] - nr["c50"][k]).argmin()
    r = codes[at_median, k] * nr["response_std"][k] + nr["response_mean"][k]
    assert r == pytest.approx(0.5, abs=0.02)
    # the early code is the Naka-Rushton function of the statistic, not an affine map of it (linear world)
    linear = np.stack([early_code(build_stimuli(params_of("linear"), seed=4)[2], i) for i in shown])
    expect = naka_rushton(feats + offset, np.array(nr["c50"]))
    expect = (expect - expect.mean(axis=0)) / expect.std(axis=0)
    np.testing.assert_allclose(codes, expect, atol=1e-4)
    assert np.abs(codes - linear).max() > 0.1


# --- conjunctive late codes -----------------------------------------------------------------------


def _codes(world: str) -> tuple[pd.DataFrame, dict, dict[str, np.ndarray]]:
    params = params_of(world, stimuli=ALL_COMBOS)
    table, _, truth = build_stimuli(params, seed=5)
    concepts = table[table.role != "catch"].drop_duplicates("concept").set_index("concept")
    codes = {
        c: late_code(truth, c, {a: row[a] for a in ("shape", "colour", "texture")})
        for c, row in concepts.iterrows()
    }
    return concepts, truth, codes


def test_conjunctive_codes_share_the_pair_pattern() -> None:
    concepts, truth, codes = _codes("nonlinear")
    late = truth["components"]["late"]
    assert "attribute_codes" not in late and len(codes) == 8
    a, b = "red_plain_circle", "red_striped_circle"  # same (shape, colour), different texture
    pair = np.asarray(late["pair_codes"]["circle"]["red"])
    np.testing.assert_allclose(codes[a] - np.asarray(late["concept_codes"][a]), pair, atol=1e-12)
    np.testing.assert_allclose(codes[b] - np.asarray(late["concept_codes"][b]), pair, atol=1e-12)
    np.testing.assert_allclose(
        codes[a] - codes[b], np.asarray(late["concept_codes"][a]) - np.asarray(late["concept_codes"][b])
    )
    # concepts of different pairs share no pattern
    c = "blue_plain_circle"
    assert abs(np.corrcoef(codes[a], codes[c])[0, 1]) < 0.9
    # not a sum of per-attribute patterns: the texture difference depends on the (shape, colour) pair
    _, _, lin = _codes("linear")
    diff = {
        w: [x[f"{col}_plain_circle"] - x[f"{col}_striped_circle"] for col in ("red", "blue")]
        for w, x in (
            ("linear", lin),
            ("nonlinear", codes),
        )
    }
    np.testing.assert_allclose(diff["linear"][0], diff["linear"][1], atol=1e-12)
    assert np.abs(diff["nonlinear"][0] - diff["nonlinear"][1]).max() > 0.5


def test_conjunctive_codes_have_the_linear_codes_scale() -> None:
    sd = {w: np.std(np.concatenate(list(_codes(w)[2].values()))) for w in ("linear", "nonlinear")}
    # each world's code entries have unit variance by construction (3 x 1/3, 2 x 1/2); 160 draws each
    assert sd["linear"] == pytest.approx(1, abs=0.2) and sd["nonlinear"] == pytest.approx(1, abs=0.2)


def test_worlds_share_images_and_early_weights() -> None:
    """Everything but the nonlinearities is the linear world's: same images, statistics and weights."""
    lin = build_stimuli(params_of("linear"), seed=6)
    non = build_stimuli(params_of("nonlinear"), seed=6)
    pd.testing.assert_frame_equal(lin[0], non[0])
    assert all(np.array_equal(lin[1][k], non[1][k]) for k in lin[1])
    assert lin[2]["image_features"] == non[2]["image_features"]
    assert lin[2]["components"]["early"]["weights"] == non[2]["components"]["early"]["weights"]
    assert "world" not in lin[2] and non[2]["world"] == "nonlinear"


# --- per-trial variability ----------------------------------------------------------------------------


def test_trial_variables_sds() -> None:
    n = 20000
    two_early = {"responses": {"early": {"latencies": [0.1, 0.15]}}}
    non = trial_variables(params_of("nonlinear", **two_early), n, derive_rng(0, "t"))
    assert non["early"].shape == (n, 2) and non["late"].shape == (n, 2) and non["gain"].shape == (n,)
    np.testing.assert_array_equal(non["early"][:, 0], non["early"][:, 1])  # one shift per early component
    assert non["early"][:, 0].std() == pytest.approx(0.015, rel=0.03)
    np.testing.assert_allclose(non["late"].std(axis=0), [0.04, 0.04], rtol=0.03)
    assert abs(np.corrcoef(non["late"].T)[0, 1]) < 0.05  # the late peaks shift independently
    assert np.log(non["gain"]).std() == pytest.approx(0.3, rel=0.03)
    lin = trial_variables(params_of("linear", **two_early), n, derive_rng(0, "t"))
    assert (lin["early"] == lin["early"][:, :1]).all() and (lin["late"] == lin["early"][:, :1]).all()
    assert lin["early"][:, 0].std() == pytest.approx(0.01, rel=0.03)
    assert np.log(lin["gain"]).std() == pytest.approx(0.2, rel=0.03)


def test_linear_world_draws_are_the_original_ones() -> None:
    """The control keeps its original per-trial draws: jitters then log-gains, from the run's generator."""
    rng = derive_rng(3, "run")
    jitters, gains = rng.normal(0, 0.01, 50), np.exp(rng.normal(0, 0.2, 50))
    var = trial_variables(params_of("linear"), 50, derive_rng(3, "run"))
    np.testing.assert_array_equal(var["early"][:, 0], jitters)
    np.testing.assert_array_equal(var["late"][:, 1], jitters)
    np.testing.assert_array_equal(var["gain"], gains)


def test_linear_world_amplitudes_are_the_original_formula() -> None:
    """Early: linear in the z-scored statistics; late: sum of one code per attribute value."""
    params = params_of("linear")
    table, _, truth = build_stimuli(params, seed=2)
    row = table[table.role == "exp"].iloc[0]
    attrs = {a: row[a] for a in ("shape", "colour", "texture")}
    a_e, a_l = trial_amplitudes(params, truth, row.image_id, "exp", attrs, row.concept)
    z = (np.asarray(truth["image_features"][row.image_id]) - truth["feature_mean"]) / np.asarray(
        truth["feature_std"]
    )
    early = params.evoked_nam + 25.0 * (np.asarray(truth["components"]["early"]["weights"]) @ z)
    np.testing.assert_array_equal(a_e, early.reshape(8, 1) * 1e-9)
    codes = truth["components"]["late"]["attribute_codes"]
    late = sum(np.asarray(codes[a][v]) for a, v in attrs.items())
    np.testing.assert_array_equal(a_l, 15.0 * late.reshape(10, 2) * 1e-9)


def _one_image_sources(world: str) -> tuple[SimulationParams, np.ndarray, dict, np.ndarray]:
    """Noise-free sources of 600 trials of one image at 1200 Hz, one late latency (peaks measurable)."""
    params = params_of(world, sfreq=1200, responses={"world": world, "late": {"latencies": [0.3]}})
    table, _, truth = build_stimuli(params, seed=1)
    img = table[table.role == "exp"].image_id.iloc[0]
    n, step = 600, 1200
    onsets = 600 + step * np.arange(n)
    src, var = evoked_sources(
        params, truth, table, onsets, [img] * n, ["exp"] * n, onsets[-1] + step, derive_rng(1, "w")
    )
    return params, src, var, onsets


@pytest.mark.parametrize("world", ["nonlinear", "linear"])
def test_measured_latency_jitter_and_gain(world: str) -> None:
    """Peak times and heights measured on simulated source time courses give the world's SDs and match the
    recorded per-trial variables."""
    params, src, var, onsets = _one_image_sources(world)
    n_e = params.early.n_dipoles
    e = np.abs(src[:n_e]).max(axis=1).argmax()  # the strongest early and late dipoles
    l_ = n_e + np.abs(src[n_e:]).max(axis=1).argmax()
    seg = np.stack([src[[e, l_], o : o + 1200] for o in onsets])  # (trials, 2, 1 s)
    peak_t = np.abs(seg).argmax(axis=2) / 1200  # s after image onset
    shift = peak_t - [0.1, 0.3]
    np.testing.assert_allclose(shift[:, 0], var["early"][:, 0], atol=1 / 1200)
    np.testing.assert_allclose(shift[:, 1], var["late"][:, 0], atol=1 / 1200)
    sd_e, sd_l = (0.015, 0.04) if world == "nonlinear" else (0.01, 0.01)
    assert shift[:, 0].std() == pytest.approx(sd_e, rel=0.1)
    assert shift[:, 1].std() == pytest.approx(sd_l, rel=0.1)
    height = np.log(np.abs(seg).max(axis=2))
    gain_sd = 0.3 if world == "nonlinear" else 0.2
    assert height[:, 1].std() == pytest.approx(gain_sd, rel=0.1)  # same image: height varies by the gain only
    np.testing.assert_allclose(height[:, 1] - height[0, 1], np.log(var["gain"] / var["gain"][0]), atol=1e-4)


# --- ground truth and workflow --------------------------------------------------------------------------


def _simulate(root: Path, cfg: dict, truth_cfg: dict | None = None) -> dict[str, Path]:
    paths = {"table": root / "stimuli.tsv", "truth": root / "ground_truth.json", "sub": root / "sub.json"}
    simulate_stimuli(paths["table"], root / "images", paths["truth"], truth_cfg or cfg, 0)
    simulate_subject(
        paths["table"],
        paths["truth"],
        [root / "sub-01_ses-01_run-01_raw.fif"],
        [root / "sub-01_ses-01_run-01_log.tsv"],
        paths["sub"],
        cfg,
        0,
        "01",
        ["01"],
        ["01"],
    )
    return paths


def test_nonlinear_ground_truth_records_every_generating_variable(tmp_path: Path) -> None:
    paths = _simulate(tmp_path, world_cfg("nonlinear"))
    truth, sub = read_json(paths["truth"]), read_json(paths["sub"])
    expected = {
        "early_jitter_sd": 0.015,
        "late_jitter_sd": 0.04,
        "gain_sd": 0.3,
        "naka_rushton": True,
        "conjunctive_codes": True,
    }
    assert (
        truth["world"] == sub["world"] == "nonlinear" and truth["nonlinear"] == sub["nonlinear"] == expected
    )
    assert len(truth["components"]["early"]["naka_rushton"]["c50"]) == len(LOW_LEVEL_FEATURES)
    table = read_tsv(paths["table"])
    concepts = set(table.loc[table.role != "catch", "concept"])
    late = truth["components"]["late"]
    assert set(late["concept_codes"]) == concepts
    stim = section_defaults("simulation")["stimuli"]  # SMALL keeps every shape and colour
    pairs = {(s, c) for s in late["pair_codes"] for c in late["pair_codes"][s]}
    assert pairs == set(itertools.product(stim["shapes"], stim["colours"]))
    log = read_tsv(tmp_path / "sub-01_ses-01_run-01_log.tsv")
    run = sub["runs"]["ses-01_run-01"]
    assert len(run["latency_jitter_early_s"]) == len(run["gain"]) == len(log)
    assert np.shape(run["latency_jitter_late_s"]) == (len(log), 2) and "latency_jitter_s" not in run


def test_stale_ground_truth_of_the_other_world_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="linear world.*'nonlinear'; rerun simulate_stimuli"):
        _simulate(tmp_path, world_cfg("nonlinear"), truth_cfg=world_cfg("linear"))


def test_snakemake_nonlinear_world(tmp_path: Path) -> None:
    """The world key reaches both rules (the stimuli job sees simulation.responses)."""
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    tiny["study"].update(subjects=["01"], sessions=["01"], runs=["01"])
    tiny["simulation"] = {**copy.deepcopy(SMALL), "responses": {"world": "nonlinear"}}
    config.write_text(yaml.safe_dump(tiny))
    sub_truth = f"{results}/sourcedata/sub-01/sub-01_ground_truth.json"
    run_snakemake(results, sub_truth, configfile=config)
    assert read_json(results / "sourcedata" / "ground_truth.json")["world"] == "nonlinear"
    assert read_json(sub_truth)["world"] == "nonlinear"


def test_nonlinear_config_is_the_default_in_the_nonlinear_world() -> None:
    """config/nonlinear.yaml, an overlay on config.yaml, changes the world and the results folder only."""
    nonlinear = yaml.safe_load((REPO / "config" / "nonlinear.yaml").read_text())
    assert nonlinear == {
        "results_dir": "results-nonlinear",
        "simulation": {"responses": {"world": "nonlinear"}},
    }
