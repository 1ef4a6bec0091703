"""Tests of the simulated THINGS-like study (megdecode.simulate, rules/simulate.smk)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake

from megdecode.config import validate_config
from megdecode.io import read_json, read_tsv
from megdecode.seeds import derive_rng
from megdecode.simulate import SimulationParams, simulate_stimuli, simulate_subject
from megdecode.simulate.responses import schedule_subject
from megdecode.simulate.sensors import (
    PHOTODIODE_CHANNEL,
    TRIGGER_CHANNEL,
    ctf_sensor_names,
    head_geometry,
    sensor_geometry,
)
from megdecode.simulate.stimuli import (
    LOW_LEVEL_FEATURES,
    Concept,
    build_stimuli,
    draw_exemplar,
    image_features,
    render_image,
)

SMALL = {
    "sfreq": 240,
    "catch_per_run": 2,
    "stimuli": {
        "n_train_concepts": 8,
        "n_test_concepts": 3,
        "exemplars_per_train_concept": 2,
        "exemplars_per_test_concept": 2,
        "n_catch_images": 2,
    },
    "noise": {"n_brain_sources": 5},
}
SESSIONS, RUNS = ["01", "02"], ["01", "02"]


def small_cfg(**changes) -> dict:
    cfg = copy.deepcopy(SMALL)
    cfg.update(changes)
    return validate_config({"simulation": cfg})["simulation"]


def simulate(root, seed=0, subject="01", cfg=None):
    """Run both stages into ``root``; return the paths."""
    cfg = cfg or small_cfg()
    table, images, truth = root / "stimuli.tsv", root / "images", root / "ground_truth.json"
    simulate_stimuli(table, images, truth, cfg, seed)
    blocks = [(s, r) for s in SESSIONS for r in RUNS]
    stem = [root / f"sub-{subject}_ses-{s}_task-main_run-{r}" for s, r in blocks]
    raws = [f"{p}_raw.fif" for p in stem]
    logs = [f"{p}_log.tsv" for p in stem]
    sub_truth = root / f"sub-{subject}_ground_truth.json"
    simulate_subject(table, truth, raws, logs, sub_truth, cfg, seed, subject, SESSIONS, RUNS)
    return {
        "table": table,
        "images": images,
        "truth": truth,
        "raws": raws,
        "logs": logs,
        "sub_truth": sub_truth,
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("sim"))


# --- sensors -------------------------------------------------------------------------------------


def test_ctf_names_match_things_meg_naming():
    names = ctf_sensor_names()
    assert len(names) == 272 == len(set(names))
    assert all(n.startswith("M") and n.endswith("-1609") for n in names)
    assert "MLC11-1609" in names and "MRO11-1609" in names
    assert not {"MLF25-1609", "MRF43-1609", "MRO13-1609"} & set(names)


def test_ctf_names_equal_real_channels_tsv(things_meg):
    path = things_meg / "ds004212/sub-BIGMEG1/ses-01/meg/sub-BIGMEG1_ses-01_task-main_run-01_channels.tsv"
    real = pd.read_csv(path, sep="\t")
    real_meg = sorted(n for n in real.name if n.startswith("M"))
    assert ctf_sensor_names() == real_meg


def test_sensor_positions_are_plausible_helmet_positions():
    names, pos, normals = sensor_geometry()
    assert pos.shape == normals.shape == (272, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-9)
    # outward-pointing coils, 8-15 cm from the device origin, neighbours 1-4 cm apart
    assert np.all((pos * normals).sum(1) > 0)
    radius = np.linalg.norm(pos, axis=1)
    assert radius.min() > 0.08 and radius.max() < 0.15
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2) + np.eye(272)
    assert 0.01 < np.median(d.min(1)) < 0.04
    # left sensors on the left (x < 0), frontal sensors in front of occipital ones (y front)
    left = np.array([n.startswith("ML") for n in names])
    front = np.array([n[2] == "F" for n in names])
    back = np.array([n[2] == "O" for n in names])
    assert np.all(pos[left, 0] < 0.005) and pos[front, 1].mean() > pos[back, 1].mean() + 0.1


def test_head_geometry_sensors_outside_head():
    head = head_geometry(derive_rng(0, "head"))
    t = np.asarray(head["dev_head_t"])
    _, pos, _ = sensor_geometry()
    in_head = pos @ t[:3, :3].T + t[:3, 3]
    dist = np.linalg.norm(in_head - np.asarray(head["sphere_r0"]), axis=1)
    assert dist.min() > head["head_radius"]


# --- stimuli --------------------------------------------------------------------------------------


def test_compositional_split():
    params = SimulationParams.from_config(small_cfg())
    table, images, _ = build_stimuli(params, seed=3)
    shown = table[table.role != "catch"]
    train = set(shown[shown.concept_split == "train"].concept)
    test = set(shown[shown.concept_split == "test"].concept)
    assert len(train) == 8 and len(test) == 3 and not train & test
    for concept, rows in shown[shown.concept_split == "test"].groupby("concept"):
        assert (rows.role == "test").sum() == 1, concept
        assert (rows.role == "exp").sum() == 2, concept
        assert rows.loc[rows.role == "test", "exemplar"].item() == rows.exemplar.max()
    assert (shown[shown.concept_split == "train"].role == "exp").all()
    for attr in ("shape", "colour", "texture"):
        train_values = set(shown[shown.concept_split == "train"][attr])
        assert set(shown[shown.concept_split == "test"][attr]) <= train_values
    assert table.image_id.is_unique and table.value.tolist() == list(range(1, len(table) + 1))
    assert (table.role == "catch").sum() == 2
    assert set(images) == set(table.image_id)
    assert all(im.shape == (128, 128, 3) and im.dtype == np.uint8 for im in images.values())


def test_split_error_when_too_many_concepts():
    cfg = small_cfg(stimuli={"n_train_concepts": 200, "n_test_concepts": 3})
    with pytest.raises(ValueError, match="attribute combinations"):
        build_stimuli(SimulationParams.from_config(cfg), seed=0)


def test_rendered_images_differ_by_attribute():
    ex = draw_exemplar(derive_rng(0, "ex"))
    ex = dataclasses.replace(ex, cx=0.0, cy=0.0, scale=0.5, background=0.5, bg_gradient=0.0)
    base = Concept("square", "red", "solid")
    feats = {}
    for name, c in {
        "base": base,
        "blue": dataclasses.replace(base, colour="blue"),
        "ring": dataclasses.replace(base, shape="ring"),
        "checker": dataclasses.replace(base, texture="checker"),
    }.items():
        img = render_image(c, ex)
        feats[name] = dict(zip(LOW_LEVEL_FEATURES, image_features(img), strict=True))
        feats[name]["img"] = img
    assert feats["base"]["mean_red"] > feats["blue"]["mean_red"]
    assert feats["blue"]["mean_blue"] > feats["base"]["mean_blue"]
    assert feats["ring"]["object_area"] < feats["base"]["object_area"]
    assert feats["checker"]["high_sf_energy"] > feats["base"]["high_sf_energy"]
    assert abs(feats["base"]["centroid_x"]) < 0.05
    moved = image_features(render_image(base, dataclasses.replace(ex, cx=0.3)))
    assert moved[LOW_LEVEL_FEATURES.index("centroid_x")] > 0.2
    for name in ("blue", "ring", "checker"):
        assert not np.array_equal(feats[name]["img"], feats["base"]["img"])


def test_stimuli_deterministic_by_seed():
    params = SimulationParams.from_config(small_cfg())
    a, ia, ta = build_stimuli(params, seed=1)
    b, ib, tb = build_stimuli(params, seed=1)
    c, ic, _ = build_stimuli(params, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert all(np.array_equal(ia[k], ib[k]) for k in ia) and ta == tb
    assert not (a.equals(c) and all(np.array_equal(ia[k], ic.get(k, 0)) for k in ia))


def test_schedule_like_things_meg():
    cfg = small_cfg()
    params = SimulationParams.from_config(cfg)
    table, _, _ = build_stimuli(params, seed=0)
    sched = schedule_subject(table, SESSIONS, RUNS, params, seed=0, subject="01")
    allt = pd.concat(sched.values(), keys=list(sched.keys()), names=["ses", "run", "i"]).reset_index()
    exp = allt[allt.trial_type == "exp"]
    assert sorted(exp.image_id) == sorted(table[table.role == "exp"].image_id)  # each exp image once
    for _, ses in allt[allt.trial_type == "test"].groupby("ses"):
        assert sorted(ses.image_id) == sorted(table[table.role == "test"].image_id)  # once per session
    for log in sched.values():
        assert (log.trial_type == "catch").sum() == 2
        soa = np.diff(log.onset)
        assert soa.min() >= 0.5 + 1.0 - 0.2 - 1e-6 and soa.max() <= 0.5 + 1.0 + 0.2 + 1e-6
        assert log.test_image_nr.notna().tolist() == (log.trial_type == "test").tolist()


# --- simulated recordings ----------------------------------------------------------------------------


def test_raw_shapes_channels_and_sfreq(sim):
    raw = mne.io.read_raw_fif(sim["raws"][0], verbose="error")
    assert raw.info["sfreq"] == 240
    meg = mne.pick_types(raw.info, meg="mag", ref_meg=False)
    assert [raw.ch_names[i] for i in meg] == ctf_sensor_names()
    assert {raw.info["chs"][i]["coil_type"] for i in meg} == {mne.io.constants.FIFF.FIFFV_COIL_CTF_GRAD}
    assert raw.get_channel_types([TRIGGER_CHANNEL, PHOTODIODE_CHANNEL]) == ["stim", "misc"]
    assert len(mne.pick_types(raw.info, meg=False, ref_meg=True)) == 3
    assert raw.info["dev_head_t"] is not None and len(raw.info["dig"]) == 3
    assert raw.info["meas_date"] is not None and raw.info["line_freq"] == 60
    log = read_tsv(sim["logs"][0])
    assert list(log.columns) == [
        "onset",
        "trial_type",
        "image_id",
        "file",
        "concept",
        "exemplar",
        "value",
        "test_image_nr",
    ]
    assert raw.times[-1] > log.onset.max() + 0.5


def test_triggers_and_photodiode_match_log(sim):
    cfg = SimulationParams.from_config(small_cfg())
    codes = cfg.trigger_codes
    for raw_path, log_path in zip(sim["raws"], sim["logs"], strict=True):
        raw = mne.io.read_raw_fif(raw_path, preload=True, verbose="error")
        log = read_tsv(log_path)
        events = mne.find_events(raw, stim_channel=TRIGGER_CHANNEL, verbose="error")
        assert len(events) == len(log)
        assert events[:, 2].tolist() == [codes[t] for t in log.trial_type]
        np.testing.assert_allclose(events[:, 0] / raw.info["sfreq"], log.onset, atol=0.6 / raw.info["sfreq"])
        diode = raw.get_data(picks=PHOTODIODE_CHANNEL)[0]
        onsets = np.flatnonzero((diode[1:] > 0.5) & (diode[:-1] <= 0.5)) + 1
        assert len(onsets) == len(log)
        lag = (onsets - events[:, 0]) / raw.info["sfreq"]
        tol = 0.5 / raw.info["sfreq"]
        t = cfg.timing
        assert lag.min() >= t.photodiode_lag_min - tol and lag.max() <= t.photodiode_lag_max + tol
        assert lag.std() > 0  # jittered, not a constant offset


def test_bad_channels_and_noise(sim):
    truth = read_json(sim["sub_truth"])
    raw = mne.io.read_raw_fif(sim["raws"][0], preload=True, verbose="error")
    meg = raw.copy().pick("mag").notch_filter(60, verbose="error")
    sd = dict(zip(meg.ch_names, np.diff(meg.get_data(), axis=1).std(axis=1), strict=True))
    typical = np.median(list(sd.values()))
    kinds = truth["bad_channels"]
    assert sorted(kinds.values()) == ["flat", "noisy"]
    for name, kind in kinds.items():
        assert (sd[name] < typical / 50) if kind == "flat" else (sd[name] > 5 * typical)
    # line noise at 60 Hz stands out in the spectrum
    psd = raw.compute_psd(picks="mag", fmax=100, verbose="error")
    freqs, p = psd.freqs, psd.get_data().mean(0)
    near = (np.abs(freqs - 60) > 3) & (np.abs(freqs - 60) < 10)
    assert p[np.argmin(np.abs(freqs - 60))] > 10 * np.median(p[near])


def test_evoked_response_is_locked_to_photodiode(sim):
    """Averaging over trials recovers an evoked field around the configured early latency."""
    raw = mne.io.read_raw_fif(sim["raws"][0], preload=True, verbose="error")
    diode = raw.get_data(picks=PHOTODIODE_CHANNEL)[0]
    onsets = np.flatnonzero((diode[1:] > 0.5) & (diode[:-1] <= 0.5)) + 1
    raw.pick("mag").filter(1, 30, verbose="error")
    events = np.c_[onsets, np.zeros_like(onsets), np.ones_like(onsets)]
    evoked = mne.Epochs(raw, events, tmin=-0.2, tmax=0.6, baseline=(None, 0), verbose="error").average()
    gfp = evoked.data.std(0)
    peak = evoked.times[np.argmax(gfp)]
    assert 0.05 < peak < 0.5
    assert gfp[evoked.times > 0].max() > 3 * gfp[evoked.times < 0].max()


def test_subject_deterministic_by_seed(sim, tmp_path):
    again = simulate(tmp_path / "a", seed=0)
    other = simulate(tmp_path / "b", seed=1)
    for path in ("table", "truth", "sub_truth"):
        assert sim[path].read_bytes() == again[path].read_bytes()
    for a, b in zip(sim["logs"], again["logs"], strict=True):
        assert Path(a).read_text() == Path(b).read_text()
    x0 = mne.io.read_raw_fif(sim["raws"][1], verbose="error").get_data()
    x1 = mne.io.read_raw_fif(again["raws"][1], verbose="error").get_data()
    np.testing.assert_array_equal(x0, x1)
    x2 = mne.io.read_raw_fif(other["raws"][1], verbose="error").get_data()
    assert x2.shape != x0.shape or not np.allclose(x0, x2)
    assert sim["table"].read_bytes() != other["table"].read_bytes()


def test_subjects_differ(sim, tmp_path):
    cfg = small_cfg()
    sub2 = tmp_path / "sub-02_truth.json"
    stem = [tmp_path / f"sub-02_ses-{s}_task-main_run-{r}" for s in SESSIONS for r in RUNS]
    simulate_subject(
        sim["table"],
        sim["truth"],
        [f"{p}_raw.fif" for p in stem],
        [f"{p}_log.tsv" for p in stem],
        sub2,
        cfg,
        0,
        "02",
        SESSIONS,
        RUNS,
    )
    a, b = read_json(sim["sub_truth"]), read_json(sub2)
    assert a["dipoles"]["early"]["pos_m"] != b["dipoles"]["early"]["pos_m"]
    assert a["head"] != b["head"]


def test_output_paths_must_match_sessions(sim, tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        simulate_subject(
            sim["table"],
            sim["truth"],
            [tmp_path / f"x_ses-0{i}_run-01_raw.fif" for i in (2, 1, 3, 4)],
            [tmp_path / f"x{i}_log.tsv" for i in range(4)],
            tmp_path / "t.json",
            small_cfg(),
            0,
            "01",
            SESSIONS,
            RUNS,
        )


def test_ground_truth_documents_components(sim):
    truth = read_json(sim["truth"])
    comps = truth["components"]
    assert comps["early"]["features"] == list(LOW_LEVEL_FEATURES)
    assert comps["late"]["features"] == ["shape", "colour", "texture"]
    assert comps["early"]["latencies_s"] == [0.1] and comps["late"]["latencies_s"] == [0.25, 0.4]
    table = read_tsv(sim["table"])
    assert set(truth["image_features"]) == set(table.image_id)


def test_snakemake_rules_on_tiny_config(tmp_path):
    """The two rules run through snakemake and produce the contract's files."""
    results = tmp_path / "results"
    config = tmp_path / "config.yaml"
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    tiny["study"].update(subjects=["01"], sessions=["01"], runs=["01"])
    tiny["simulation"] = copy.deepcopy(SMALL)
    config.write_text(yaml.safe_dump(tiny))
    targets = [
        f"{results}/stimuli/stimuli.tsv",
        f"{results}/sourcedata/sub-01/ses-01/meg/sub-01_ses-01_task-main_run-01_raw.fif",
        f"{results}/sourcedata/sub-01/ses-01/meg/sub-01_ses-01_task-main_run-01_log.tsv",
    ]
    run_snakemake(results, *targets, configfile=config)
    table = read_tsv(results / "stimuli" / "stimuli.tsv")
    assert all((results / "stimuli" / "images" / f).is_file() for f in table.file)
    assert (results / "sourcedata" / "ground_truth.json").is_file()
    assert (results / "benchmarks" / "simulate_subject" / "sub-01.tsv").is_file()
    dry = run_snakemake(results, "-n", *targets, configfile=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_damaged_stimulus_image_is_noticed_by_a_dry_run(tmp_path):
    """Images damaged after the simulate_stimuli job used to go unnoticed (`snakemake -n`: nothing to do)."""
    results = tmp_path / "results"
    table = results / "stimuli" / "stimuli.tsv"
    run_snakemake(results, str(table), cores=1)
    assert "Nothing to be done" in run_snakemake(results, "-n", str(table)).stdout
    image = sorted((results / "stimuli" / "images").rglob("*.png"))[3]
    image.write_bytes(image.read_bytes()[:100])
    proc = run_snakemake(results, "-n", str(table), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"1 stimulus image(s) in {results / 'stimuli' / 'images'} differ from what" in out
    assert str(image.relative_to(results / "stimuli" / "images")) in out
    assert f"Delete {results / 'stimuli' / 'images'} and run the same snakemake command again" in out
