"""Unit tests of megdecode.preprocessing: signal chain, reader quirks, splits, scaler, bad input."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from megdecode.config import section_defaults
from megdecode.io import load_npy, read_tsv
from megdecode.preprocessing.assemble import (
    apply_scaler,
    assemble_subject,
    assign_splits,
    fit_robust_scaler,
    mne_layout,
    sensor_layout,
)
from megdecode.preprocessing.params import PreprocessingParams
from megdecode.preprocessing.reader import (
    BadRunError,
    attach_stimuli,
    find_run_sidecars,
    pick_meg_channels,
    read_events,
)
from megdecode.preprocessing.run import preprocess_run, welch_psd
from megdecode.preprocessing.signal import epoch_continuous, highpass_drift_kernel, lowpass_kernel
from megdecode.preprocessing.synth import SynthSpec, helmet_positions, make_raw
from megdecode.preprocessing.synth import make_info as make_info_synth

PARAMS = PreprocessingParams.from_config(section_defaults("preprocessing"))


def pre_cfg(**changes) -> dict:
    """The validated ``preprocessing`` slice: schema defaults plus ``changes``."""
    return {**section_defaults("preprocessing"), **changes}


def _epoch(data: np.ndarray, sfreq: float, samples, params: PreprocessingParams = PARAMS):
    return epoch_continuous(lambda a, b: data[:, a:b], data.shape[1], data.shape[0], sfreq, samples, params)


# --- filter design and the known-signal tests -----------------------------------------------------------


def test_filter_kernels_match_mne_design():
    import mne

    lp = lowpass_kernel(1200.0, 40.0, 120.0, "r")
    ref = mne.filter.create_filter(None, 1200.0, None, 40.0, verbose="error")
    np.testing.assert_allclose(lp, ref, atol=1e-7)
    hp = mne.filter.create_filter(None, 120.0, 0.1, None, verbose="error")
    drift = highpass_drift_kernel(0.1, 120.0)
    delta = np.zeros_like(drift)
    delta[drift.size // 2] = 1
    np.testing.assert_allclose(delta - drift, hp, atol=1e-12)


def _amplitude(x: np.ndarray, t: np.ndarray, freq: float) -> float:
    """Least-squares amplitude of a sinusoid at ``freq`` (with an offset) in ``x`` sampled at ``t``."""
    design = np.column_stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return float(np.hypot(coef[0], coef[1]))


@pytest.mark.parametrize("sfreq", [1200.0, 600.0])
def test_known_signals_10hz_kept_60hz_and_002hz_removed(sfreq):
    t = np.arange(int(120 * sfreq)) / sfreq
    data = np.stack(
        [np.sin(2 * np.pi * f * t + 1.0) for f in (10.0, 60.0, 0.02)]
    )  # one component per channel
    samples = np.arange(int(40 * sfreq), int(80 * sfreq), int(1.5 * sfreq)) + 7
    res = _epoch(data, sfreq, samples)
    assert res.data.shape == (len(samples), 3, 181)
    # 10 Hz: in the pass band, kept at unit gain in every epoch
    amp10 = [_amplitude(res.data[e, 0], res.times, 10.0) for e in range(len(samples))]
    np.testing.assert_allclose(amp10, 1.0, rtol=0.01)
    # 60 Hz: beyond the low-pass stopband (50 Hz); < 1% of it is left, in the epochs and the continuous stream
    assert np.abs(res.data[:, 1]).max() < 0.01
    mid = slice(res.stream.shape[1] // 4, 3 * res.stream.shape[1] // 4)
    assert np.abs(res.stream[1, mid]).max() < 0.01
    # 0.02 Hz: the high-pass (MNE's design: gain 0.075 at 0.02 Hz) removes > 90% from the continuous signal,
    # and after the baseline no epoch keeps more than 2% of it
    stream_t = np.arange(res.stream.shape[1]) / 120.0
    assert _amplitude(res.stream[2, mid], stream_t[mid], 0.02) < 0.1
    assert np.abs(res.data[:, 2]).max() < 0.02
    # without the high-pass, the same epochs keep the slow ramp (the check above can fail)
    no_hp = _epoch(data, sfreq, samples, dataclasses.replace(PARAMS, l_freq=None))
    assert np.abs(no_hp.data[:, 2]).max() > 0.05


def test_impulse_lands_on_the_right_sample():
    sfreq, latency = 1200.0, 0.2  # 0.2 s after onset -> output sample (0.2 + 0.5) * 120 = 84
    n = int(60 * sfreq)
    samples = np.array([5003, 13457, 30001, 45678])  # not on any common decimation grid
    data = np.zeros((3, n))
    for s in samples:
        data[:, s + int(latency * sfreq)] = 1.0
    res = _epoch(data, sfreq, samples, dataclasses.replace(PARAMS, l_freq=None))
    peak = np.argmax(res.data, axis=-1)
    assert (peak == 84).all(), peak
    assert res.times[84] == pytest.approx(latency)
    # with the high-pass too, the peak does not move
    res = _epoch(data, sfreq, samples)
    assert (np.argmax(res.data, axis=-1) == 84).all()


def test_agrees_with_plain_mne_chain():
    import mne

    raw, samples = make_raw(SynthSpec(n_meg=6, n_ref=2, sfreq=600.0, duration=60.0, n_events=20))
    picks = mne.pick_types(raw.info, meg=True, ref_meg=False)
    data = raw.get_data(picks=picks)
    ours = _epoch(data, 600.0, samples).data
    filt = raw.copy().pick(picks).filter(0.1, 40.0, verbose="error")
    events = np.column_stack([samples, np.zeros_like(samples), np.ones_like(samples)])
    ref = mne.Epochs(filt, events, tmin=-0.5, tmax=1.0, baseline=(None, 0), preload=True, verbose="error")
    ref = ref.decimate(5).get_data()
    rel = np.sqrt(((ours - ref) ** 2).mean() / (ref**2).mean())
    assert rel < 1e-3, rel


def test_welch_psd_finds_a_sine():
    sfreq = 200.0
    t = np.arange(int(20 * sfreq)) / sfreq
    freqs, psd = welch_psd(np.sin(2 * np.pi * 12.0 * t)[None], sfreq)
    assert freqs[np.argmax(psd[0])] == pytest.approx(12.0, abs=0.5)


# --- reader -------------------------------------------------------------------------------------------------


def _ctf_info(names: list[str], kinds: list[str]):
    import mne

    info = mne.create_info(names, 1200.0, kinds)
    return info


def test_pick_by_header_kind_and_drop_bad_by_base_name():
    names = ["MLC11-1609", "MRO11-1609", "MZC01-1609", "BG1-1609", "UPPT001"]
    info = _ctf_info(names, ["mag", "mag", "mag", "ref_meg", "stim"])
    pick = pick_meg_channels(info, ["MRO11", "MXX99-1609"], "run-x")
    assert pick.names == ["MLC11-1609", "MZC01-1609"]
    assert pick.dropped == ["MRO11-1609"]
    assert pick.bad_not_found == ["MXX99-1609"]
    with pytest.raises(BadRunError, match="run-x.*no MEG sensor"):
        pick_meg_channels(_ctf_info(["UPPT001"], ["stim"]), [], "run-x")


def test_events_and_sidecars_skip_appledouble(tmp_path):
    meg = tmp_path / "meg"
    meg.mkdir()
    stem = "sub-01_ses-01_task-main_run-01"
    (meg / f"{stem}_meg.fif").write_bytes(b"")
    (meg / f"._{stem}_events.tsv").write_bytes(b"\x00\x05\x16\x07" * 10)
    (meg / f"._{stem}_channels.tsv").write_bytes(b"\x00\x05\x16\x07")
    found = find_run_sidecars(meg / f"{stem}_meg.fif")
    assert found["events"] is None and found["channels"] is None
    (meg / f"{stem}_events.tsv").write_text(
        "onset\tduration\ttrial_type\tvalue\tsample\n1.5\t0.5\texp\t12.0\t1800\n3.0\t0.5\tcatch\tN/A\t3601\n"
    )
    (meg / "sub-01_ses-01_coordsystem.json").write_text("{}")
    found = find_run_sidecars(meg / f"{stem}_meg.fif")
    assert found["events"].name == f"{stem}_events.tsv"
    assert found["coordsystem"].name == "sub-01_ses-01_coordsystem.json"
    events = read_events(found["events"], 1200.0, stem, ("exp", "test", "catch"))
    assert events["sample"].tolist() == [1800, 3601]
    assert events["value"].tolist()[0] == 12 and pd.isna(events["value"].iloc[1])


def test_things_meg_sidecars(things_meg):
    """Real ds004212 sidecars: AppleDouble skipped, N/A catch rows, MEG typed OTHER, missing coordsystem."""
    meg_dir = things_meg / "ds004212" / "sub-BIGMEG1" / "ses-01" / "meg"
    raw = meg_dir / "sub-BIGMEG1_ses-01_task-main_run-01_meg.ds"  # the signal itself is not shipped
    found = find_run_sidecars(raw)
    assert found["events"].name == "sub-BIGMEG1_ses-01_task-main_run-01_events.tsv"
    assert all(p is None or not p.name.startswith("._") for p in found.values())
    events = read_events(found["events"], 1200.0, "BIGMEG1", ("exp", "test", "catch"))
    counts = events["trial_type"].value_counts()
    assert counts["catch"] == 20 and counts["test"] == 20 and counts["exp"] in (185, 186)
    assert events.loc[events["trial_type"] == "catch", "value"].isna().all()
    assert events.loc[events["trial_type"] != "catch", "value"].notna().all()
    np.testing.assert_array_equal(events["sample"], np.round(events["onset"] * 1200).astype(int))
    # channels.tsv types the 272 sensors OTHER; the header kinds (here: a header with the same names) decide
    channels = read_tsv(found["channels"])
    assert (channels["type"] == "OTHER").sum() == 272
    kind = {"OTHER": "mag", "MEGREFMAG": "ref_meg", "MEGREFGRADAXIAL": "ref_meg"}
    info = _ctf_info(channels["name"].tolist(), [kind.get(t, "misc") for t in channels["type"]])
    pick = pick_meg_channels(info, ["MRO11-1609"], "BIGMEG1")
    assert len(pick.names) == 271 and pick.dropped == ["MRO11-1609"]
    no_coord = find_run_sidecars(
        meg_dir.parent.parent / "ses-03" / "meg" / "sub-BIGMEG1_ses-03_task-main_run-01_meg.ds"
    )
    assert no_coord["coordsystem"] is None and no_coord["events"] is not None


def test_attach_stimuli_checks_values():
    events = pd.DataFrame(
        {"onset": [1.0, 2.0], "trial_type": ["exp", "catch"], "value": pd.array([7, pd.NA], dtype="Int64")}
    )
    events["sample"] = [600, 1200]
    stimuli = pd.DataFrame({"image_id": ["a"], "concept": ["c"], "value": [7.0], "concept_split": ["train"]})
    out = attach_stimuli(events, stimuli, "r1")
    assert out["image_id"].tolist()[0] == "a" and pd.isna(out["image_id"].iloc[1])
    events.loc[0, "value"] = 8
    with pytest.raises(BadRunError, match="r1.*not found in the stimuli table"):
        attach_stimuli(events, stimuli, "r1")


# --- splits, scaler, layout ---------------------------------------------------------------------------------


def _trials(n_train_imgs=20, n_test_imgs=4, reps=3):
    rows = [("exp", f"tr{i}", f"c{i % 5}", "train") for i in range(n_train_imgs)]
    rows += [("exp", f"tl{i}", f"t{i % 2}", "test") for i in range(6)]
    rows += [("test", f"ts{i}", f"t{i % 2}", "test") for i in range(n_test_imgs) for _ in range(reps)]
    rows += [("catch", "n/a", "n/a", "n/a")] * 2
    return pd.DataFrame(rows, columns=["trial_type", "image_id", "concept", "concept_split"])


def test_splits_val_from_training_images_only_and_seeded():
    trials = _trials()
    a = assign_splits(trials, 0.25, np.random.default_rng(1))
    b = assign_splits(trials, 0.25, np.random.default_rng(1))
    assert a.equals(b)
    assert (a == "val").sum() == 5
    assert set(trials.loc[a.isin(["train", "val"]), "concept_split"]) == {"train"}
    assert set(a[trials["trial_type"] == "catch"]) == {"catch"}
    assert set(a[trials["trial_type"] == "test"]) == {"test_small"}
    assert set(a[(trials["trial_type"] == "exp") & (trials["concept_split"] == "test")]) == {"test_large"}


def test_scaler_never_sees_test_rows():
    rng = np.random.default_rng(0)
    meg = rng.standard_normal((50, 3, 10)).astype(np.float32)
    train = np.arange(30)
    c1, s1, used = fit_robust_scaler(meg, train, (25.0, 75.0), 1000, np.random.default_rng(0))
    assert set(used) <= set(train)
    meg[30:] = 1e6  # test rows: anything
    c2, s2, _ = fit_robust_scaler(meg, train, (25.0, 75.0), 1000, np.random.default_rng(0))
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(s1, s2)
    apply_scaler(meg, c2, s2, clamp=20.0, block=7)
    assert meg[30:].max() == 20.0 and np.abs(meg).max() <= 20.0


def test_sensor_layout_in_unit_square():
    xy = sensor_layout(helmet_positions(40))
    assert xy.shape == (40, 2) and xy.min() == 0.0 and xy.max() == 1.0
    with pytest.raises(ValueError, match="no sensor positions"):
        sensor_layout(np.zeros((10, 3)))


def _ctf_275_channels(info) -> list[str]:
    import mne

    return [info["ch_names"][i] for i in mne.pick_types(info, meg=True, ref_meg=False, exclude=[])]


def test_mne_layout_is_the_ctf_275_layout_file():
    """The reference layout: the centres of MNE's CTF-275 layout boxes (names without the serial suffix),
    scaled to the unit square; a channel it does not name is an error."""
    import datetime

    import mne

    from megdecode.simulate.sensors import head_geometry, make_info

    date = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    info = make_info(600.0, head_geometry(np.random.default_rng(0)), date)
    names = _ctf_275_channels(info)[::-1]
    layout = mne.channels.read_layout("CTF-275")  # the file mne.find_layout picks for CTF (MLC11-2622, ...)
    short = [n.split("-")[0] for n in layout.names]
    boxes = layout.pos[[short.index(n.split("-")[0]) for n in names]]
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    np.testing.assert_allclose(mne_layout(info, names), (centres - centres.min(0)) / np.ptp(centres, 0))
    synth = make_info_synth(SynthSpec(n_meg=40))  # CTF-like made-up names, some not in the layout
    with pytest.raises(ValueError, match="layout lacks"):
        mne_layout(synth, synth["ch_names"][:40])


def test_sensor_layout_matches_mnes_on_a_real_ctf_275_recording():
    """On the real CTF-275 sample the projection of the sensors' positions is MNE's layout to within 1% of the
    layout's width on average (measured 0.0053, max 0.021; benchmarks/sensor_layout_compare.py)."""
    import mne
    from conftest import SHARED
    from scipy.spatial import procrustes

    recording = SHARED / "ctf-sample" / "testdata_ctf_short_discontinuous.ds"
    if not recording.is_dir():
        pytest.skip(f"real CTF sample not present: {recording}")
    info = mne.io.read_raw_ctf(recording, verbose="error").info
    names = _ctf_275_channels(info)
    ours = sensor_layout(np.array([info["chs"][info["ch_names"].index(n)]["loc"][:3] for n in names]))
    theirs = mne_layout(info, names)
    distance = np.linalg.norm(ours - theirs, axis=1)
    assert len(names) == 273 and distance.mean() < 0.01 and distance.max() < 0.03, distance
    assert procrustes(theirs, ours)[2] < 1e-3


# --- run + subject end to end on synthetic BIDS-like files ---------------------------------------------

N_IMG = 12


def _stimuli(path: Path) -> None:
    rows = []
    for v in range(1, N_IMG + 1):
        test_concept = v > 9  # images 10-12 belong to test concepts
        role = "test" if v in (11, 12) else "exp"
        rows.append(
            (
                f"img{v:02d}",
                f"img{v:02d}.png",
                f"c{v if not test_concept else 10 + v % 2}",
                role,
                v,
                "test" if test_concept else "train",
            )
        )
    columns = ["image_id", "file", "concept", "role", "value", "concept_split"]
    pd.DataFrame(rows, columns=columns).to_csv(path, sep="\t", index=False)


def _write_run(root: Path, session: str, seed: int, sfreq: float = 360.0, **spec_kw) -> tuple[Path, Path]:
    spec = SynthSpec(n_meg=8, n_ref=2, sfreq=sfreq, duration=40.0, n_events=20, seed=seed, **spec_kw)
    raw, samples = make_raw(spec)
    meg = root / f"sub-01/ses-{session}/meg"
    meg.mkdir(parents=True, exist_ok=True)
    stem = f"sub-01_ses-{session}_task-main_run-01"
    raw_path = meg / f"{stem}_meg.fif"
    raw.save(raw_path, overwrite=True, verbose="error")
    # 10 exp images of training concepts + image 10 (exp, test concept) + test images 11, 12 + catch
    values = [1 + i % 9 for i in range(14)] + [10, 10, 11, 12, 11, 12]
    kinds = ["exp"] * 16 + ["test"] * 4
    kinds[3], values[3] = "catch", None
    events = pd.DataFrame(
        {
            "onset": samples / spec.sfreq,
            "duration": 0.5,
            "trial_type": kinds,
            "value": values,
            "sample": samples,
        }
    )
    events.to_csv(meg / f"{stem}_events.tsv", sep="\t", index=False, na_rep="n/a")
    return raw_path, meg / f"{stem}_events.tsv"


def _run_job(tmp_path, raw_path, events_path, stimuli, cfg):
    stem = raw_path.name.replace("_meg.fif", "")
    out = {
        k: tmp_path / "out" / f"{stem}{s}"
        for k, s in (("e", "_epo.fif"), ("q", "_qc.tsv"), ("p", "_psd.npz"))
    }
    preprocess_run(raw_path, events_path, stimuli, out["e"], out["q"], out["p"], pre_cfg(**cfg))
    return out


def test_run_and_subject_end_to_end(tmp_path):
    import mne

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    cfg = {"val_fraction": 0.25}
    outs = [
        _run_job(tmp_path, *_write_run(tmp_path / "bids", ses, seed), stimuli, cfg)
        for ses, seed in (("01", 1), ("02", 2))
    ]
    qc = read_tsv(outs[0]["q"])
    assert qc.loc[0, "status"] == "ok" and qc.loc[0, "dropped_channels"] == "MRO11-1609"
    assert "no channels sidecar" in qc.loc[0, "warnings"]
    ep = mne.read_epochs(outs[0]["e"], verbose="error")
    assert ep.get_data().shape == (20, 7, 181) and ep.info["sfreq"] == 120.0
    res = tmp_path / "pre"
    table = assemble_subject(
        [o["e"] for o in outs], [o["q"] for o in outs], "01",
        res, res / "runs.tsv",
        pre_cfg(**cfg), seed=0,
    )  # fmt: skip
    meg = load_npy(res / "meg.npy", mmap=True)
    assert meg.dtype == np.float32 and meg.shape == (len(table), 7, 181) and np.abs(meg).max() <= 20
    trials = read_tsv(res / "trials.tsv", dtype={"session": str, "run": str})
    assert list(trials.columns) == [
        "subject",
        "session",
        "run",
        "trial_type",
        "image_id",
        "concept",
        "split",
        "n_averaged",
    ]
    assert "catch" not in set(trials["trial_type"])
    small = trials[trials["split"] == "test_small"]
    assert sorted(small["image_id"]) == ["img11", "img12"]  # one row per test image
    assert small["n_averaged"].tolist() == [4, 4] and small["session"].isna().all()
    large = trials[trials["split"] == "test_large"]
    assert set(large["image_id"]) == {"img10"} and len(large) == 4
    train_val = trials[trials["split"].isin(["train", "val"])]
    assert not set(train_val["concept"]) & (set(small["concept"]) | set(large["concept"]))
    assert not set(trials.loc[trials["split"] == "train", "image_id"]) & set(
        trials.loc[trials["split"] == "val", "image_id"]
    )
    info = json.loads((res / "info.json").read_text())
    assert info["n_times"] == 181 and info["sfreq"] == 120.0 and info["scaler"]["fit_on"] == "train"
    assert info["scaler"]["n_fit_trials"] == (trials["split"] == "train").sum()
    channels = read_tsv(res / "channels.tsv")
    assert (
        len(channels) == 7
        and channels[["x", "y"]].to_numpy().min() >= 0
        and channels[["x", "y"]].max().max() <= 1
    )


def test_scaler_leakage_through_assembly(tmp_path):
    """Making every test-set epoch wild must not change the scaler (it sees train rows only)."""
    import mne

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    out = _run_job(tmp_path, *_write_run(tmp_path / "bids", "01", 3), stimuli, {})
    scalers = []
    for wild in (False, True):
        if wild:
            ep = mne.read_epochs(out["e"], preload=True, verbose="error")
            test = (ep.metadata["concept_split"] == "test").to_numpy()
            assert test.sum() == 6
            ep._data[test] *= 1000.0
            ep.save(out["e"], overwrite=True, verbose="error")
        res = tmp_path / f"pre{wild}"
        assemble_subject(
            [out["e"]], [out["q"]], "01",
            res, res / "r.tsv", pre_cfg(), seed=0,
        )  # fmt: skip
        scalers.append(json.loads((res / "info.json").read_text())["scaler"])
        meg = load_npy(res / "meg.npy")
    assert scalers[0]["center"] == scalers[1]["center"] and scalers[0]["scale"] == scalers[1]["scale"]
    trials = read_tsv(res / "trials.tsv")
    assert np.abs(meg[trials["split"].str.startswith("test").to_numpy()]).max() == 20.0  # clamped


# --- bad input -----------------------------------------------------------------------------------------


def test_bad_runs_raise_with_the_run_name(tmp_path):
    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    raw_path, events_path = _write_run(tmp_path / "bids", "01", 4)
    ev = read_tsv(events_path)
    outside = ev.copy()
    outside.loc[5, "sample"] = 10**7
    outside.to_csv(tmp_path / "outside.tsv", sep="\t", index=False, na_rep="n/a")
    with pytest.raises(BadRunError, match="sub-01_ses-01_task-main_run-01.*outside the recording"):
        _run_job(tmp_path, raw_path, tmp_path / "outside.tsv", stimuli, {})
    ev.iloc[:0].to_csv(tmp_path / "empty.tsv", sep="\t", index=False)
    with pytest.raises(BadRunError, match="run-01.*no events"):
        _run_job(tmp_path, raw_path, tmp_path / "empty.tsv", stimuli, {})
    with pytest.raises(BadRunError, match="differs from preprocessing.raw_sfreq"):
        _run_job(tmp_path, raw_path, events_path, stimuli, {"raw_sfreq": 1200.0})
    with pytest.raises(BadRunError, match="recording not found"):
        _run_job(
            tmp_path, raw_path.with_name("sub-01_ses-01_task-main_run-09_meg.fif"), events_path, stimuli, {}
        )
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*_epo.fif"))


def test_nan_and_flat_channels_are_bad():
    data = np.random.default_rng(0).standard_normal((4, 12000))
    data[2, 5000] = np.nan
    with pytest.raises(BadRunError, match="NaN"):
        _epoch(data, 600.0, [3000])
    data[2] = 1.0
    with pytest.raises(BadRunError, match=r"flat MEG channel.*bad_channels"):
        _epoch(data, 600.0, [3000])


def _epoch_named(data, sfreq, samples, rows, names):
    n = data.shape[0]
    read = lambda a, b: data[:, a:b]  # noqa: E731
    return epoch_continuous(read, data.shape[1], n, sfreq, samples, PARAMS, "run-x", rows=rows, names=names)


def test_nan_names_channel_time_span_and_config_key():
    """Not the processing chunk ('samples 0-11400'): the channel, its NaN span and how to drop it."""
    data = np.random.default_rng(0).standard_normal((5, 30000))
    data[3, 24000:24600] = np.nan  # 40.0-40.999 s at 600 Hz, in a later chunk than the first
    data[4, 10] = np.nan  # a dropped channel (not in rows): ignored
    names = ["MLC11", "MLC12", "MRO11"]
    with pytest.raises(BadRunError) as err:
        _epoch_named(data, 600.0, [3000], np.array([0, 2, 3]), names)
    msg = str(err.value)
    assert "MRO11: 600 sample(s) between 40.000 s and 40.998 s" in msg
    assert "MLC11:" not in msg and "preprocessing.bad_channels" in msg and "[MRO11]" in msg


def test_flat_channel_is_named_not_indexed():
    data = np.random.default_rng(0).standard_normal((5, 12000))
    data[3] = 1.0
    with pytest.raises(BadRunError, match=r"flat MEG channel\(s\) \['MRO11'\].*bad_channels: \[MRO11\]"):
        _epoch_named(data, 600.0, [3000], np.array([0, 2, 3]), ["MLC11", "MLC12", "MRO11"])


def test_skip_bad_run_is_recorded_and_left_out(tmp_path):
    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    good = _run_job(tmp_path, *_write_run(tmp_path / "bids", "01", 5), stimuli, {"on_bad_run": "skip"})
    raw_path, events_path = _write_run(tmp_path / "bids", "02", 6)
    raw_path.write_bytes(b"not a fif file")
    bad = _run_job(tmp_path, raw_path, events_path, stimuli, {"on_bad_run": "skip"})
    qc = read_tsv(bad["q"])
    assert qc.loc[0, "status"] == "skipped" and "cannot read recording" in qc.loc[0, "problem"]
    res = tmp_path / "pre"
    table = assemble_subject(
        [good["e"], bad["e"]], [good["q"], bad["q"]], "01",
        res, res / "runs.tsv",
        pre_cfg(on_bad_run="skip"), seed=0,
    )  # fmt: skip
    assert len(table) == 15 + 2  # 16 exp events minus 1 catch, and 2 test images averaged from 4 trials
    info = json.loads((res / "info.json").read_text())
    assert info["runs_skipped"] == ["ses-02_run-01"]


def test_derivatives_description(tmp_path):
    from megdecode.preprocessing.run import write_derivatives_description

    write_derivatives_description(tmp_path / "dataset_description.json", pre_cfg(h_freq=30.0))
    desc = json.loads((tmp_path / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and "0.1-30.0 Hz" in desc["GeneratedBy"][0]["Description"]


def test_subject_job_writes_arrays_and_qc_report(tmp_path):
    from megdecode.preprocessing.subject import OUTPUT_KEYS, preprocess_subject

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    out = _run_job(tmp_path, *_write_run(tmp_path / "bids", "01", 7), stimuli, {})
    names = {"meg": "meg.npy", "report": "report.html", "info": "info.json"}
    outputs = {k: tmp_path / "pre" / names.get(k, f"{k}.tsv") for k in OUTPUT_KEYS}
    trials = preprocess_subject([out["e"]], [out["q"]], [out["p"]], "01", outputs, pre_cfg(), seed=0)
    assert len(trials) == len(load_npy(outputs["meg"], mmap=True))
    text = outputs["report"].read_text()
    assert "Created via" in text and not re.search(r"Created on [0-9-]+ [0-9:]+", text)  # no timestamp
    for title in (
        "Runs and epoch counts",
        "Dropped channels",
        "PSD before/after",
        "Evoked response",
        "Topomaps",
    ):
        assert title in text


def test_truncated_recording_says_truncated_and_recopy(tmp_path):
    """A FIF cut short in the BIDS copy: not 'epochs outside the recording' but a file to re-copy."""
    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    raw_path, events_path = _write_run(tmp_path / "bids", "01", 4)
    data = raw_path.read_bytes()
    raw_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadRunError, match=r"run-01: recording .*_meg.fif is truncated or corrupt.*re-copy"):
        _run_job(tmp_path, raw_path, events_path, stimuli, {})


def test_zero_byte_events_file_names_the_file(tmp_path):
    from megdecode.preprocessing.reader import read_events

    path = tmp_path / "sub-01_ses-01_task-main_run-01_events.tsv"
    path.write_text("")
    with pytest.raises(BadRunError, match=rf"run r: events file {re.escape(str(path))} is empty"):
        read_events(path, 600.0, "r", ("exp", "test", "catch"))


def test_qc_mean_psd_of_runs_at_600_and_1200_hz(tmp_path):
    """raw_sfreq: null accepts runs at several rates; their spectra used to crash the QC report (ragged)."""
    from megdecode.io import save_npz
    from megdecode.preprocessing.qc import mean_psd

    rng = np.random.default_rng(0)
    paths = []
    for i, sfreq in enumerate((600.0, 1200.0)):
        x = rng.standard_normal((3, int(20 * sfreq))).astype(np.float32)
        freqs, psd = welch_psd(x, sfreq)
        clean_freqs, clean = welch_psd(x[:, ::10], sfreq / 10)
        paths.append(tmp_path / f"run{i}_psd.npz")
        save_npz(
            {
                "freqs_raw": freqs,
                "psd_raw": psd,
                "freqs_clean": clean_freqs,
                "psd_clean": clean,
                "evoked_sum": np.zeros((3, 0)),
                "evoked_n": np.array(0),
                "times": np.zeros(0),
            },
            paths[-1],
        )
    freqs, curve = mean_psd(paths, "raw")
    # the common band: up to the lower Nyquist frequency (300 Hz), 0.5 Hz apart
    np.testing.assert_allclose(freqs, np.arange(0, 300.5, 0.5))
    # white noise of unit variance: one-sided density 2 / sfreq, here the mean of 2/600 and 2/1200
    assert np.median(curve[1:-1]) == pytest.approx((2 / 600 + 2 / 1200) / 2, rel=0.05)
    freqs, curve = mean_psd(paths, "clean")
    assert freqs[-1] == 30.0 and np.all(np.isfinite(curve))


def test_subject_job_with_runs_at_two_sampling_rates(tmp_path):
    """The schema accepts raw_sfreq: null (any rate that sfreq divides): the QC report must be written."""
    from megdecode.preprocessing.subject import OUTPUT_KEYS, preprocess_subject

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    cfg = {"raw_sfreq": None}
    outs = [
        _run_job(tmp_path, *_write_run(tmp_path / "bids", ses, seed, sfreq=rate), stimuli, cfg)
        for ses, seed, rate in (("01", 1, 360.0), ("02", 2, 720.0))
    ]
    assert [read_tsv(o["q"]).loc[0, "raw_sfreq"] for o in outs] == [360.0, 720.0]
    names = {"meg": "meg.npy", "report": "report.html", "info": "info.json"}
    outputs = {k: tmp_path / "pre" / names.get(k, f"{k}.tsv") for k in OUTPUT_KEYS}
    trials = preprocess_subject(
        [o["e"] for o in outs],
        [o["q"] for o in outs],
        [o["p"] for o in outs],
        "01",
        outputs,
        pre_cfg(**cfg),
        0,
    )
    assert {"01", "02"} <= set(trials["session"])  # ("n/a": test images averaged over both)
    assert "PSD before/after" in outputs["report"].read_text()


def test_channel_missing_from_one_run_names_the_run_and_the_channel(tmp_path):
    """It used to be reported on the derived _epo.fif of whichever run came second, with counts only."""
    import mne

    from megdecode.preprocessing.subject import OUTPUT_KEYS, preprocess_subject

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    runs = [_write_run(tmp_path / "bids", ses, seed) for ses, seed in (("01", 1), ("02", 2), ("03", 3))]
    raw = mne.io.read_raw_fif(runs[0][0], preload=True, verbose="error")
    lost = raw.ch_names[4]
    raw.drop_channels([lost]).save(runs[0][0], overwrite=True, verbose="error")  # the first run lacks it
    outs = [_run_job(tmp_path, *run, stimuli, {}) for run in runs]
    outputs = {k: tmp_path / "pre" / f"{k}.out" for k in OUTPUT_KEYS}
    epochs, qc, psd = ([o[k] for o in outs] for k in "eqp")
    with pytest.raises(ValueError) as err:
        preprocess_subject(epochs, qc, psd, "01", outputs, pre_cfg(), seed=0)
    msg = str(err.value)
    assert f"run sub-01_ses-01_task-main_run-01 lacks {lost}" in msg and "ses-02" not in msg
    assert f"add {lost} to preprocessing.bad_channels" in msg


def test_negative_onset_with_a_valid_sample_warns(tmp_path, caplog):
    """events.tsv with onset < 0 but a usable sample column used to be accepted without a word."""
    import logging

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    raw_path, events_path = _write_run(tmp_path / "bids", "01", 5)
    events = pd.read_csv(events_path, sep="\t")
    events.loc[[2, 5], "onset"] = -events.loc[[2, 5], "onset"]
    events.to_csv(events_path, sep="\t", index=False, na_rep="n/a")
    with caplog.at_level(logging.WARNING):
        out = _run_job(tmp_path, raw_path, events_path, stimuli, {})
    qc = read_tsv(out["q"])
    assert qc.loc[0, "status"] == "ok"
    note = f"2 event(s) in {events_path} have a negative onset (first: row 3, onset -"
    assert note in qc.loc[0, "warnings"] and note in caplog.text
    assert "their 'sample' column is used" in caplog.text
