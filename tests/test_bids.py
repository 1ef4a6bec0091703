"""Tests of the sourcedata -> BIDS conversion (megdecode.bids) and its rules."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
from mne_bids import BIDSPath, read_raw_bids

from megdecode import bids
from megdecode.artifacts.sourcedata import read_stimulus_log
from megdecode.config import section_defaults
from megdecode.io import read_tsv, write_json

SFREQ = 600.0
CODES = {"exp": 1, "test": 2, "catch": 3}
VALIDATOR = Path(sys.executable).with_name("bids-validator-deno")


def bids_params(**changes) -> bids.BidsParams:
    """Run settings from the schema defaults plus ``changes``."""
    return bids.BidsParams.from_config({**section_defaults("bids"), **changes})


def make_source_run(
    folder: Path, subject: str, session: str, run: str, n_trials: int = 12, seed: int = 0, lag_ms=(8, 20)
) -> tuple[Path, Path, pd.DataFrame]:
    """A tiny lab-style run: 3 MEG channels, UPPT001 triggers, UADC016-2104 photodiode, and its log.

    Returns the raw path, the log path and the true (photodiode) onset samples with the log.
    """
    rng = np.random.default_rng(seed)
    kinds = np.array(["exp"] * (n_trials - 4) + ["test"] * 2 + ["catch"] * 2)
    kinds = kinds[rng.permutation(n_trials)]
    gaps = rng.uniform(1.3, 1.7, n_trials)
    onsets = 1.0 + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    n_times = int((onsets[-1] + 2.0) * SFREQ)
    names = ["MLC11-1609", "MLC12-1609", "MRO11-1609", "UPPT001", "UADC016-2104"]
    info = mne.create_info(names, SFREQ, ["mag"] * 3 + ["stim", "misc"])
    data = rng.normal(size=(5, n_times)) * 1e-13
    data[3:] = 0.0
    trig = np.round(onsets * SFREQ).astype(int)
    lags = np.round(rng.uniform(*lag_ms, n_trials) / 1e3 * SFREQ).astype(int)
    for t, lag, kind in zip(trig, lags, kinds, strict=True):
        data[3, t : t + 6] = CODES[kind]
        data[4, t + lag : t + lag + int(0.5 * SFREQ)] = 2.5
    data[4] += rng.normal(size=n_times) * 0.05
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(1_600_000_000 + 100 * int(run))
    meg = folder / f"sub-{subject}" / f"ses-{session}" / "meg"
    meg.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{subject}_ses-{session}_task-main_run-{run}"
    raw_path = meg / f"{stem}_raw.fif"
    raw.save(raw_path, overwrite=True, verbose="error")
    log_table = pd.DataFrame(
        {
            "onset": onsets + 10.0,  # the stimulus program's own clock
            "trial_type": kinds,
            "image_id": [f"img{seed}_{i:03d}" for i in range(n_trials)],
            "file": [f"images/img{i:03d}.png" for i in range(n_trials)],
            "concept": [f"concept{i % 4}" for i in range(n_trials)],
            "exemplar": np.arange(n_trials) % 3,
            "value": [pd.NA if k == "catch" else 100 + i for i, k in enumerate(kinds)],
            "test_image_nr": [1 if k == "test" else pd.NA for k in kinds],
        }
    )
    log_path = meg / f"{stem}_log.tsv"
    log_table.to_csv(log_path, sep="\t", index=False, na_rep="n/a")
    log_table["true_sample"] = trig + lags
    return raw_path, log_path, log_table


def convert(src: Path, root: Path, subject: str, session: str, run: str, seed: int = 0, **kw) -> dict:
    raw_path, log_path, _ = make_source_run(src, subject, session, run, seed=seed)
    params = bids_params(**kw)
    return bids.convert_run(raw_path, log_path, root, subject, session, run, "main", params)


def _convert_existing(args: tuple) -> None:
    src, root, subject, session, run = args
    stem = f"sub-{subject}_ses-{session}_task-main_run-{run}"
    meg = Path(src) / f"sub-{subject}" / f"ses-{session}" / "meg"
    bids.convert_run(
        meg / f"{stem}_raw.fif",
        meg / f"{stem}_log.tsv",
        root,
        subject,
        session,
        run,
        "main",
        bids_params(),
    )


# --- unit tests --------------------------------------------------------------------------------------


def test_triggers_match_log_and_photodiode_correction(tmp_path: Path) -> None:
    raw_path, log_path, truth = make_source_run(tmp_path, "01", "01", "01")
    raw = mne.io.read_raw_fif(raw_path, verbose="error")
    events = bids.find_events(raw, read_stimulus_log(log_path), bids_params(trigger_codes=CODES), "run")
    assert list(events.columns) == list(bids.EVENTS_COLUMNS)
    np.testing.assert_array_equal(events["sample"], truth["true_sample"])
    np.testing.assert_allclose(events["onset"], truth["true_sample"] / SFREQ)
    assert events["trial_type"].tolist() == truth["trial_type"].tolist()
    assert events["image_id"].tolist() == truth["image_id"].tolist()


def test_without_photodiode_uses_trigger_samples(tmp_path: Path) -> None:
    raw_path, log_path, truth = make_source_run(tmp_path, "01", "01", "01")
    raw = mne.io.read_raw_fif(raw_path, verbose="error")
    params = bids_params(photodiode_channel=None)
    events = bids.find_events(raw, read_stimulus_log(log_path), params, "run")
    assert (events["sample"] < truth["true_sample"]).all()


def test_mismatch_names_run_and_first_row() -> None:
    types = ["exp", "exp", "test", "exp", "catch"]
    codes = np.array([1, 1, 2, 3, 3])
    with pytest.raises(bids.TriggerLogMismatch, match=r"sub-07_run-02.*row 3 .*'exp' expects code 1.*code 3"):
        bids.match_triggers_to_log(codes, types, CODES, "sub-07_run-02")
    with pytest.raises(bids.TriggerLogMismatch, match=r"sub-07_run-02: 4 triggers but 5 log rows.*row is 4"):
        bids.match_triggers_to_log(np.array([1, 1, 2, 1]), types, CODES, "sub-07_run-02")
    with pytest.raises(bids.TriggerLogMismatch, match=r"no trigger code"):
        bids.match_triggers_to_log(codes, ["odd", *types[1:]], CODES, "r")


def test_inferred_codes_must_stay_one_to_one() -> None:
    assert bids.match_triggers_to_log(np.array([5, 5, 9]), ["a", "a", "b"], None, "r") == {"a": 5, "b": 9}
    with pytest.raises(bids.TriggerLogMismatch, match="row 2"):
        bids.match_triggers_to_log(np.array([5, 9, 9]), ["a", "b", "a"], None, "r")


def test_missing_trigger_in_recording_is_reported(tmp_path: Path) -> None:
    raw_path, log_path, _ = make_source_run(tmp_path, "01", "01", "01")
    table = read_stimulus_log(log_path)
    dropped = table.drop(index=5).reset_index(drop=True)  # log lost a row: order breaks at row 5 or count
    dropped.to_csv(log_path, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(bids.TriggerLogMismatch, match=r"sub-01_ses-01_task-main_run-01.*row"):
        bids.convert_run(raw_path, log_path, tmp_path / "bids", "01", "01", "01", "main", bids_params())
    assert not (tmp_path / "bids" / "sub-01").exists()


def test_timing_drift_is_an_error() -> None:
    samples = np.array([0, 600, 1200, 1900])
    onsets = np.array([5.0, 6.0, 7.0, 8.0])
    assert bids.check_log_timing(samples[:3], onsets[:3], 600.0, 0.05, "r") == 0.0
    with pytest.raises(bids.TriggerLogMismatch, match=r"row 3 is 166.7 ms away"):
        bids.check_log_timing(samples, onsets, 600.0, 0.05, "r")


def test_photodiode_missing_edge_is_an_error() -> None:
    signal = np.zeros(1000)
    signal[100:300] = 1.0
    assert bids.photodiode_onsets(signal, np.array([90]), 1000.0, 0.05, 0.5, "r").tolist() == [100]
    with pytest.raises(ValueError, match="no photodiode onset within 50 ms .*log row 1"):
        bids.photodiode_onsets(signal, np.array([90, 500]), 1000.0, 0.05, 0.5, "r")
    inverted = 1.0 - signal
    assert bids.photodiode_onsets(inverted, np.array([90]), 1000.0, 0.05, 0.5, "r").tolist() == [100]


def test_log_without_required_columns_names_file(tmp_path: Path) -> None:
    path = tmp_path / "x_log.tsv"
    pd.DataFrame({"onset": [1.0], "trial_type": ["exp"]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"x_log.tsv.*lacks column\(s\) \['image_id', 'concept', 'value'\]"):
        read_stimulus_log(path)


def test_trigger_codes_from_ground_truth(tmp_path: Path) -> None:
    truth = tmp_path / "ground_truth.json"
    write_json({"trigger_codes": {"exp": 7, "test": 8, "catch": 9}}, truth)
    assert bids_params().with_codes_from(truth).trigger_codes == {"exp": 7, "test": 8, "catch": 9}
    assert bids_params(trigger_codes=CODES).with_codes_from(truth).trigger_codes == CODES
    write_json({"seed": 0}, truth)
    with pytest.raises(ValueError, match="ground_truth.json has no 'trigger_codes'.*bids.trigger_codes"):
        bids_params().with_codes_from(truth)
    with pytest.raises(ValueError, match="unknown bids key.*'stim_chanel' \\(did you mean 'stim_channel'"):
        bids.BidsParams.from_config({**section_defaults("bids"), "stim_chanel": "X"})


# --- conversion, round trip, validator, races --------------------------------------------------------


def test_round_trip_and_run_files_only(tmp_path: Path) -> None:
    root = tmp_path / "bids"
    raw_path, log_path, truth = make_source_run(tmp_path / "src", "01", "01", "01")
    out = bids.convert_run(raw_path, log_path, root, "01", "01", "01", "main", bids_params())
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(root).as_posix() for p in out.values())
    assert not list(tmp_path.glob(".tmp-*")), "temporary root left behind"

    events = read_tsv(out["events"])
    assert list(events.columns) == list(bids.EVENTS_COLUMNS)
    assert events["value"].isna().tolist() == (truth["trial_type"] == "catch").tolist()
    assert json.loads(out["sidecar"].read_text())["Manufacturer"] == "CTF"
    channels = read_tsv(out["channels"])
    assert channels.set_index("name").loc["UPPT001", "type"] == "TRIG"

    bp = BIDSPath(root=root, subject="01", session="01", task="main", run="01", datatype="meg")
    raw = read_raw_bids(bp, verbose="error")
    ann = raw.annotations
    samples = np.round(ann.onset * raw.info["sfreq"]).astype(int)
    np.testing.assert_array_equal(samples, truth["true_sample"])
    trial_types = [d.split("/")[0] for d in ann.description]
    assert trial_types == truth["trial_type"].tolist()
    values = [d.partition("/")[2] or "na" for d in ann.description]  # catch has one value: no "/"
    assert values == [
        "na" if k == "catch" else str(v) for k, v in zip(truth["trial_type"], truth["value"], strict=True)
    ]
    src = mne.io.read_raw_fif(raw_path, verbose="error")
    np.testing.assert_array_equal(raw.get_data(), src.get_data())


def _dataset(tmp_path: Path, order: list[str], parallel: bool) -> Path:
    src, root = tmp_path / "src", tmp_path / f"bids-{'-'.join(order)}-{parallel}"
    for i, run in enumerate(["01", "02"]):
        if not (src / f"sub-01/ses-01/meg/sub-01_ses-01_task-main_run-{run}_raw.fif").exists():
            make_source_run(src, "01", "01", run, seed=i)
    jobs = [(src, root, "01", "01", run) for run in order]
    if parallel:
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_convert_existing, jobs))
    else:
        for job in jobs:
            _convert_existing(job)
    description = bids.DatasetDescription.from_config(section_defaults("bids"))
    bids.write_dataset_files(root, [("01", "01", r) for r in order], "main", description)
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_race_parallel_or_any_order_same_dataset(tmp_path: Path) -> None:
    a = _dataset(tmp_path, ["01", "02"], parallel=False)
    b = _dataset(tmp_path, ["02", "01"], parallel=True)
    ta, tb = _tree(a), _tree(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        if name.endswith(".fif"):
            da = mne.io.read_raw_fif(a / name, verbose="error").get_data()
            np.testing.assert_array_equal(da, mne.io.read_raw_fif(b / name, verbose="error").get_data())
        else:
            assert ta[name] == tb[name], name
    scans = read_tsv(a / "sub-01/ses-01/sub-01_ses-01_scans.tsv")
    assert scans["filename"].tolist() == [
        f"meg/sub-01_ses-01_task-main_run-{r}_meg.fif" for r in ("01", "02")
    ]
    coords = json.loads((a / "sub-01/ses-01/meg/sub-01_ses-01_coordsystem.json").read_text())
    assert set(coords["HeadCoilCoordinates"]) == {"NAS", "LPA", "RPA"}


@pytest.mark.skipif(not VALIDATOR.exists(), reason="bids-validator-deno not installed (pip install .[test])")
def test_bids_validator_zero_errors(tmp_path: Path) -> None:
    root = _dataset(tmp_path, ["01", "02"], parallel=False)
    report = validate(root)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [], errors
    assert report["summary"]["subjects"] == ["01"]


def validate(root: Path) -> dict:
    """Run the official BIDS validator on ``root`` (offline) and return its JSON report."""
    proc = subprocess.run(
        [str(VALIDATOR), str(root), "--format", "json"], capture_output=True, text=True, timeout=300
    )
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


# --- workflow (tiny config) --------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_workflow_bids_tree(tiny_results: Path) -> None:
    """The rules' BIDS tree on config/tiny.yaml: events equal the logs, validator finds no error."""
    check_bids_tree(tiny_results)


def check_bids_tree(tiny_results: Path) -> None:
    root = tiny_results / "bids"
    runs = sorted(root.glob("sub-*/ses-*/meg/*_meg.fif"))
    assert len(runs) == 4  # 2 subjects x 2 sessions x 1 run
    for raw_path in runs:
        stem = raw_path.name.removesuffix("_meg.fif")
        sub, ses = stem.split("_")[:2]
        log_table = read_tsv(tiny_results / "sourcedata" / sub / ses / "meg" / f"{stem}_log.tsv")
        events = read_tsv(raw_path.with_name(f"{stem}_events.tsv"))
        assert events["trial_type"].tolist() == log_table["trial_type"].tolist()
        assert events["image_id"].tolist() == log_table["image_id"].tolist()
        lag = (
            events["onset"].to_numpy()
            - events["onset"].iloc[0]
            - (log_table["onset"] - log_table["onset"].iloc[0])
        )
        assert np.abs(lag).max() < 0.05
    assert (root / "sub-01/ses-02/sub-01_ses-02_scans.tsv").is_file()
    if VALIDATOR.exists():
        errors = [i for i in validate(root)["issues"]["issues"] if i["severity"] == "error"]
        assert errors == [], errors


def test_truncated_recording_is_named_as_truncated(tmp_path: Path) -> None:
    """A FIF cut short must say so (not 'buffer size must be a multiple of element size')."""
    raw_path, log_path, _ = make_source_run(tmp_path / "src", "01", "01", "01")
    data = raw_path.read_bytes()
    raw_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated or corrupt.*re-copy") as err:
        bids.convert_run(raw_path, log_path, tmp_path / "bids", "01", "01", "01", "main", bids_params())
    assert str(raw_path) in str(err.value)


def test_truncated_simulated_recording_says_delete_and_rerun(tmp_path: Path) -> None:
    """The simulator's own sourcedata cannot be re-copied, and a plain rerun fails again: name the command."""
    raw_path, log_path, _ = make_source_run(tmp_path / "src", "01", "01", "01")
    truth = tmp_path / "src" / "ground_truth.json"
    truth.write_text(json.dumps({"trigger_codes": CODES}))
    data = raw_path.read_bytes()
    raw_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        bids.convert_run(
            raw_path,
            log_path,
            tmp_path / "bids",
            "01",
            "01",
            "01",
            "main",
            bids_params(),
            ground_truth_json=truth,
        )
    msg = str(err.value)
    assert f"recording {raw_path} is truncated or corrupt" in msg and "re-copy" not in msg
    assert (
        f"the simulate_subject job wrote it: delete {raw_path} and run the same snakemake command again"
        in msg
    )


def test_stale_staging_folder_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    """A kill -9 during bids_run leaves .tmp-bids-<run>-*; the run's next start removes it."""
    stale = tmp_path / ".tmp-bids-sub-01_ses-01_task-main_run-01-abc123"
    (stale / "sub-01").mkdir(parents=True)
    other = tmp_path / ".tmp-bids-sub-01_ses-01_task-main_run-02-xyz"
    other.mkdir()
    out = convert(tmp_path / "src", tmp_path / "bids", "01", "01", "01")
    assert out["raw"].is_file()
    assert not stale.exists() and other.exists()  # only this run's leftovers
