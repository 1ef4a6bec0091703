"""THINGS-MEG reader: events, channels, inventory, stimuli table, splits (real metadata via `things_meg`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import THINGS_MEG
from things_twin import TwinSpec, label_trials, make_layout_twin, recording_path, split_summary

from megdecode.artifacts.paths import bids_meg_dir, run_stem
from megdecode.config import load_config, section_defaults
from megdecode.datasets import things

REPO = Path(__file__).resolve().parents[1]
ALL_SESSIONS = [f"{i:02d}" for i in range(1, 13)]
ALL_RUNS = [f"{i:02d}" for i in range(1, 11)]
THINGS_FILE = re.compile(r"^(?P<c>[a-z0-9_\-']+)/(?P=c)_\d{2}[a-z]\.jpg$")


# --- unit tests on small hand-made tables --------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


EVENTS = (
    "onset\tduration\ttrial_type\tthings_category_nr\tvalue\tsample\n"
    "1.0\t0.5\texp\t1.0\t10.0\t1200\n"
    "2.0\t0.5\tcatch\tN/A\tN/A\t2400\n"
    "3.0\t0.5\ttest\t2.0\t20.0\t3600\n"
    "4.0\t0.5\texp\t2.0\t21.0\t4800\n"
    "5.0\t0.5\tcatch\tn/a\tn/a\t6000\n"
)
IMAGES = (
    "things_image_nr\ttrial_type\tfile_path\tconcept\tthings_exemplar_nr\n"
    "10\texp\timages_meg/ant/ant_01b.jpg\tant\t1\n"
    "21\texp\timages_meg/bee/bee_02s.jpg\tbee\t2\n"
    "20\ttest\timages_test_meg/bee_13n.jpg\tbee\t13\n"
    "n/a\tcatch\timages_catch_meg/catch001.jpg\tn/a\tn/a\n"
)


def test_appledouble_names() -> None:
    assert things.is_appledouble("x/._sub-1_events.tsv")
    assert not things.is_appledouble("x/sub-1_events.tsv")


def test_read_events_floats_and_both_na_spellings(tmp_path: Path) -> None:
    ev = things.read_events_tsv(_write(tmp_path / "e_events.tsv", EVENTS))
    assert ev["value"].dtype == "Int64" and ev["sample"].dtype == "Int64"
    assert ev["value"].tolist()[:1] == [10]
    assert ev["value"].isna().tolist() == [False, True, False, False, True]
    assert ev["things_category_nr"].isna().sum() == 2


def test_read_events_rejects_appledouble_and_bad_tables(tmp_path: Path) -> None:
    apple = tmp_path / "._e_events.tsv"
    apple.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff\xfe")
    with pytest.raises(things.ThingsDataError, match="AppleDouble"):
        things.read_events_tsv(apple)
    with pytest.raises(things.ThingsDataError, match="lacks column"):
        things.read_events_tsv(_write(tmp_path / "a_events.tsv", "onset\tvalue\n1\t2\n"))
    with pytest.raises(things.ThingsDataError, match="whole numbers"):
        things.read_events_tsv(_write(tmp_path / "b_events.tsv", EVENTS.replace("10.0", "10.5")))
    with pytest.raises(things.ThingsDataError, match="without an image number"):
        things.read_events_tsv(_write(tmp_path / "c_events.tsv", EVENTS.replace("10.0", "N/A")))


def test_meg_sensor_names_by_name_and_dropped_channel() -> None:
    names = ["SCLK01-177", "BG1-1609", "G11-1609", "MLC11-1609", "MRO11-1609", "MZP01-1609", "UPPT001"]
    assert things.meg_sensor_names(names) == ["MLC11-1609", "MZP01-1609"]
    assert things.is_meg_sensor("MRO11-1609") and not things.is_meg_sensor("UADC016-2104")


def test_meg_picks_recover_sensors_typed_misc() -> None:
    import mne

    names = ["MLC11-1609", "MRO11-1609", "MRT21-1609", "BG1-1609", "UPPT001"]
    retyped = mne.create_info(names, 1200.0, ["misc", "misc", "misc", "ref_meg", "misc"])
    assert things.meg_picks(retyped) == ["MLC11-1609", "MRT21-1609"]
    typed = mne.create_info(names, 1200.0, ["mag", "mag", "mag", "ref_meg", "stim"])
    assert things.meg_picks(typed) == ["MLC11-1609", "MRT21-1609"]


def test_stimuli_table_and_splits_from_small_tables(tmp_path: Path) -> None:
    events = things.read_events_tsv(_write(tmp_path / "e_events.tsv", EVENTS))
    images = things.read_image_table(_write(tmp_path / "images.tsv", IMAGES))
    assert len(images) == 3  # the catch row has no image number
    table = things.stimuli_from_events(events, images)
    assert table["image_id"].tolist() == ["ant_01b", "bee_02s", "bee_13n"]
    assert table["file"].tolist() == ["ant/ant_01b.jpg", "bee/bee_02s.jpg", "bee/bee_13n.jpg"]
    assert table["role"].tolist() == ["exp", "exp", "test"]
    # bee has a test image: all bee images leave training
    assert table["concept_split"].tolist() == ["train", "test", "test"]
    assert table["exemplar"].tolist() == [1, 2, 13]
    labelled = label_trials(events, table)
    assert labelled["split_group"].tolist() == ["train", "catch", "test_small", "test_large", "catch"]
    assert split_summary(labelled) == {"train": 1, "test_small": 1, "test_large": 1, "catch": 2}


def test_image_table_without_concept_columns_parses_file_names(tmp_path: Path) -> None:
    table = things.read_image_table(_write(tmp_path / "t.tsv", "value\tfile\n7\tant/ant_03s.jpg\n"))
    assert table.loc[0, "concept"] == "ant" and table.loc[0, "exemplar"] == 3


def test_stimuli_table_errors_name_the_fix(tmp_path: Path) -> None:
    events = things.read_events_tsv(_write(tmp_path / "e_events.tsv", EVENTS))
    images = things.read_image_table(_write(tmp_path / "images.tsv", IMAGES.replace("21\texp", "99\texp")))
    with pytest.raises(things.ThingsDataError, match=r"not in the image table .*\[21\].*study.image_table"):
        things.stimuli_from_events(events, images)
    clash = things.read_events_tsv(
        _write(tmp_path / "x_events.tsv", EVENTS.replace("exp\t2.0\t21.0", "exp\t2.0\t20.0"))
    )
    good = things.read_image_table(_write(tmp_path / "images2.tsv", IMAGES))
    with pytest.raises(things.ThingsDataError, match="both exp and test"):
        things.stimuli_from_events(clash, good)
    dup = IMAGES + "10\texp\timages_meg/ant/ant_09b.jpg\tant\t9\n"
    with pytest.raises(things.ThingsDataError, match="map to several files"):
        things.read_image_table(_write(tmp_path / "dup.tsv", dup))


def test_study_param_accepts_study_slice_or_single_values() -> None:
    class P:
        study = {"task": "main"}
        runs = ["01"]

    assert things.study_param(P, "task") == "main" and things.study_param(P, "runs") == ["01"]
    with pytest.raises(KeyError, match="subjects"):
        things.study_param(P, "subjects")


def test_things_meg_config_validates() -> None:
    cfg = load_config(REPO / "config" / "things-meg.yaml")
    study = cfg["study"]
    assert study["source"] == "bids"
    assert study["subjects"] == ["BIGMEG1", "BIGMEG2", "BIGMEG3", "BIGMEG4"]
    assert study["sessions"] == ALL_SESSIONS and study["runs"] == ALL_RUNS


# --- the real metadata (skips without ../shared) -------------------------------------------------------


@pytest.fixture(scope="module")
def real_split(request: pytest.FixtureRequest) -> tuple[pd.DataFrame, pd.DataFrame]:
    shared = THINGS_MEG
    if not (shared / "ds004212").is_dir():
        pytest.skip("real THINGS-MEG metadata not found (CI provides ../shared)")
    events = things.read_study_events(shared / "ds004212", ["BIGMEG1"], ALL_SESSIONS, ALL_RUNS, "main")
    images = things.read_image_table(shared / "things" / "things_meg_images.tsv")
    stimuli = things.stimuli_from_events(events, images)
    return label_trials(events, stimuli), stimuli


def test_real_split_counts(real_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    labelled, stimuli = real_split
    assert split_summary(labelled) == {
        "train": 19848,
        "test_small": 200,
        "test_large": 2400,
        "catch": 2400,
    }
    # every test image is shown 12 times (once per session); train/large-test images once
    reps = labelled[labelled["split_group"] == "test_small"].groupby("image_id").size()
    assert (reps == 12).all()
    assert labelled[labelled["split_group"].isin(["train", "test_large"])]["image_id"].is_unique
    train_concepts = set(labelled.loc[labelled["split_group"] == "train", "concept"])
    test_concepts = set(stimuli.loc[stimuli["role"] == "test", "concept"])
    assert len(test_concepts) == 200 and len(train_concepts) == 1654
    assert not train_concepts & test_concepts
    assert (stimuli.loc[stimuli["role"] == "test", "exemplar"] >= 13).all()


def test_real_stimuli_table_files(real_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, stimuli = real_split
    assert len(stimuli) == 22248 + 200 and stimuli["image_id"].is_unique
    bad = [f for f in stimuli["file"] if not THINGS_FILE.match(f)]
    assert not bad, bad[:5]
    assert set(stimuli.columns) >= {
        "image_id",
        "file",
        "concept",
        "exemplar",
        "role",
        "concept_split",
        "value",
    }


def _twin(things_meg: Path, dest: Path, **kw) -> Path:
    spec = TwinSpec(
        subjects=kw.pop("subjects", ["BIGMEG1", "BIGMEG2"]),
        sessions=kw.pop("sessions", ["01", "03"]),
        runs=kw.pop("runs", ["01", "02"]),
        **kw,
    )
    return make_layout_twin(things_meg / "ds004212", dest, spec)


def test_inventory_on_layout_twin(things_meg: Path, tmp_path: Path) -> None:
    missing = [("BIGMEG2", "01", "02", "channels"), ("BIGMEG2", "03", "02", "meg_json")]
    root = _twin(things_meg, tmp_path / "bids", recording="fif", duration_s=7.0, missing=missing)
    assert (root / "sub-BIGMEG2/ses-01/meg/._sub-BIGMEG2_ses-01_task-main_run-01_events.tsv").is_file()
    found = things.discover_runs(root, "main")
    assert len(found) == 8 and "emptyroom" not in set(found["subject"])
    out = tmp_path / "bids_check" / "inventory.tsv"
    things.write_inventory(root, ["BIGMEG1", "BIGMEG2"], ["01", "03"], ["01", "02"], "main", out)
    inv = pd.read_csv(out, sep="\t", dtype={"session": str, "run": str})
    assert len(inv) == 8 and inv["recording_format"].eq("fif").all()
    assert inv["n_meg"].dropna().eq(271).all()
    row = inv.set_index(["subject", "session", "run"])
    assert "no channels.tsv" in row.loc[("BIGMEG2", "01", "02"), "warning"]
    assert not row.loc[("BIGMEG2", "01", "02"), "channels"]
    # meg.json missing: the sampling rate comes from the recording header
    assert "no meg.json" in row.loc[("BIGMEG2", "03", "02"), "warning"]
    assert row.loc[("BIGMEG2", "03", "02"), "sfreq"] == 1200.0
    # the real gap: ses-03 run-01 has no coordsystem.json
    assert "no coordsystem.json" in row.loc[("BIGMEG1", "03", "01"), "warning"]
    assert "AppleDouble" in row.loc[("BIGMEG1", "01", "01"), "warning"]
    assert "OTHER" in row.loc[("BIGMEG1", "01", "02"), "warning"]
    n_real = int(row.loc[("BIGMEG1", "01", "01"), ["n_exp", "n_test", "n_catch"]].sum())
    assert 0 < n_real < 10  # events truncated to the 7 s recording


def test_inventory_fails_naming_missing_files(things_meg: Path, tmp_path: Path) -> None:
    missing = [("BIGMEG1", "01", "02", "events")]
    root = _twin(things_meg, tmp_path / "bids", recording="empty_ds", subjects=["BIGMEG1"], missing=missing)
    shutil.rmtree(root / "sub-BIGMEG1/ses-03/meg/sub-BIGMEG1_ses-03_task-main_run-01_meg.ds")
    with pytest.raises(things.ThingsDataError) as err:
        things.inventory(root, ["BIGMEG1"], ["01", "03"], ["01", "02"], "main")
    msg = str(err.value)
    assert "sub-BIGMEG1 ses-01 run-02: no events.tsv" in msg
    assert "sub-BIGMEG1 ses-03 run-01: no recording" in msg
    assert "2 configured run(s)" in msg
    with pytest.raises(things.ThingsDataError, match="does not exist"):
        things.inventory(tmp_path / "nowhere", ["BIGMEG1"], ["01"], ["01"], "main")


def test_twin_recording_reads_with_mne_bids_and_real_quirks(things_meg: Path, tmp_path: Path) -> None:
    import warnings

    from mne_bids import BIDSPath, read_raw_bids

    root = _twin(
        things_meg, tmp_path / "bids", recording="fif", duration_s=3.0, subjects=["BIGMEG1"], sessions=["01"]
    )
    path = BIDSPath(
        root=root, subject="BIGMEG1", session="01", run="01", task="main", datatype="meg", suffix="meg"
    )
    assert things.find_recording(root, "BIGMEG1", "01", "01", "main") == path.fpath
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = read_raw_bids(path, verbose="error")
    # channels.tsv types the gradiometers OTHER: mne-bids makes them misc; meg_picks still finds them
    assert "mag" not in raw.get_channel_types()
    picks = things.meg_picks(raw)
    assert len(picks) == 271 and "MRO11-1609" not in picks
    events = things.read_events_tsv(
        root / "sub-BIGMEG1/ses-01/meg/sub-BIGMEG1_ses-01_task-main_run-01_events.tsv"
    )
    assert np.all(events["sample"].to_numpy(dtype=float) < raw.n_times)


def test_stimuli_table_on_twin(things_meg: Path, tmp_path: Path) -> None:
    root = _twin(things_meg, tmp_path / "bids", recording="none", subjects=["BIGMEG1"])
    out = tmp_path / "stimuli" / "stimuli.tsv"
    table = things.write_stimuli_table(
        root,
        things_meg / "things" / "things_meg_images.tsv",
        ["BIGMEG1"],
        ["01", "03"],
        ["01", "02"],
        "main",
        out,
    )
    written = pd.read_csv(out, sep="\t")
    assert len(written) == len(table) and written["image_id"].is_unique
    events = things.read_study_events(root, ["BIGMEG1"], ["01", "03"], ["01", "02"], "main")
    for role in ("exp", "test"):
        shown = set(events.loc[events["trial_type"] == role, "value"].astype(int))
        assert set(written.loc[written["role"] == role, "value"]) == shown
    # test concepts come from all 200 test images of the table, not only those shown in these runs
    test_concepts = set(
        pd.read_csv(things_meg / "things" / "things_meg_test_images.tsv", sep="\t")["concept"]
    )
    assert set(written.loc[written["concept_split"] == "test", "concept"]) <= test_concepts
    assert written.loc[written["concept"].isin(test_concepts), "concept_split"].eq("test").all()
    assert written.loc[written["role"] == "test", "concept_split"].eq("test").all()
    with pytest.raises(things.ThingsDataError, match="image table"):
        things.write_stimuli_table(root, tmp_path / "none.tsv", ["BIGMEG1"], ["01"], ["01"], "main", out)


def test_recording_path_prefers_existing_then_ds(tmp_path: Path) -> None:
    folder = tmp_path / "sub-A" / "ses-01" / "meg"
    folder.mkdir(parents=True)
    expected_ds = str(folder / "sub-A_ses-01_task-main_run-01_meg.ds")
    assert recording_path(tmp_path, "A", "01", "01", "main") == expected_ds
    (folder / "._sub-A_ses-01_task-main_run-01_meg.fif").write_bytes(b"\x00")
    (folder / "sub-A_ses-01_task-main_run-01_meg.fif").write_bytes(b"")
    assert recording_path(tmp_path, "A", "01", "01", "main").endswith("run-01_meg.fif")
    (folder / "sub-A_ses-01_task-main_run-01_meg.ds").mkdir()
    assert recording_path(tmp_path, "A", "01", "01", "main") == expected_ds


def test_preprocessing_reader_on_twin(things_meg: Path, tmp_path: Path) -> None:
    """The per-run preprocessing (PREPROCESS stage) copes with the real quirks: OTHER types, MRO11-1609,
    float/N/A events, missing sidecars."""
    from megdecode.preprocessing.run import preprocess_run

    missing = [("BIGMEG1", "03", "01", "channels"), ("BIGMEG1", "03", "01", "meg_json")]
    spec = dict(subjects=["BIGMEG1"], sessions=["03"], runs=["01"], duration_s=7.0, missing=missing)
    root = _twin(things_meg, tmp_path / "bids", recording="fif", **spec)
    stimuli = tmp_path / "stimuli.tsv"
    things.write_stimuli_table(
        root, things_meg / "things" / "things_meg_images.tsv", ["BIGMEG1"], ["03"], ["01"], "main", stimuli
    )
    raw = recording_path(root, "BIGMEG1", "03", "01", "main")
    events = raw.replace("_meg.fif", "_events.tsv")
    out = tmp_path / "out"
    qc = preprocess_run(
        raw,
        events,
        stimuli,
        out / "r_epo.fif",
        out / "qc.tsv",
        out / "psd.npz",
        section_defaults("preprocessing"),
        1,
    ).iloc[0]
    assert qc["status"] == "ok" and int(qc["n_channels_kept"]) == 271
    assert "MRO11-1609" in str(qc["dropped_channels"])
    n_events = things.read_events_tsv(events).shape[0]
    assert int(qc["n_events"]) == n_events > 0
    assert "coordsystem" in qc["warnings"] and "channels" in qc["warnings"]


def test_twin_recordings_are_seeded(things_meg: Path, tmp_path: Path) -> None:
    import mne

    def data(dest: Path, seed: int) -> np.ndarray:
        root = _twin(
            things_meg,
            dest,
            recording="fif",
            duration_s=3.0,
            subjects=["BIGMEG1"],
            sessions=["01"],
            runs=["02"],
            seed=seed,
        )
        fif = things.find_recording(root, "BIGMEG1", "01", "02", "main")
        return mne.io.read_raw_fif(fif, preload=True, verbose="error").get_data()

    first, again, other = data(tmp_path / "a", 0), data(tmp_path / "b", 0), data(tmp_path / "c", 1)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def _bare_run(tmp_path: Path, events_text: str) -> Path:
    """A run folder with a (fake) recording, meg.json and the given events.tsv text."""
    meg = bids_meg_dir(tmp_path, "01", "01")
    meg.mkdir(parents=True)
    stem = run_stem("01", "01", "01", "main")
    (meg / f"{stem}_meg.ds").mkdir()
    (meg / f"{stem}_meg.json").write_text('{"SamplingFrequency": 1200.0}')
    events = meg / f"{stem}_events.tsv"
    events.write_text(events_text)
    return events


def test_zero_byte_events_file_is_an_error_naming_it(tmp_path: Path) -> None:
    events = _bare_run(tmp_path, "")
    with pytest.raises(ValueError, match=rf"{re.escape(str(events))} is empty \(0 bytes"):
        things.read_events_tsv(events)
    with pytest.raises(ValueError, match=re.escape(str(events))):
        things.inventory(tmp_path, ["01"], ["01"], ["01"], "main")


def test_header_only_events_file_warns_in_the_inventory(tmp_path: Path) -> None:
    events = _bare_run(tmp_path, "onset\tduration\ttrial_type\tvalue\tsample\n")
    row = things.inventory_row(tmp_path, "01", "01", "01", "main")
    assert row["n_exp"] == 0 and f"{events} has a header but no trials" in row["warning"]


def test_bad_image_number_names_its_events_file_and_rows_print_plainly(tmp_path: Path) -> None:
    meg = bids_meg_dir(tmp_path, "01", "01")
    meg.mkdir(parents=True)
    path = _write(meg / f"{run_stem('01', '01', '01', 'main')}_events.tsv", EVENTS)
    images = things.read_image_table(_write(tmp_path / "images.tsv", IMAGES.replace("21\texp", "99\texp")))
    events = things.read_study_events(tmp_path, ["01"], ["01"], ["01"], "main")
    with pytest.raises(things.ThingsDataError) as err:
        things.stimuli_from_events(events, images)
    assert f"[21] in {path}" in str(err.value)
    no_value = _write(tmp_path / "n_events.tsv", EVENTS.replace("exp\t2.0\t21.0", "exp\t2.0\tn/a"))
    with pytest.raises(things.ThingsDataError, match=r"image number \('value'\): \[3\]$") as err:
        things.read_events_tsv(no_value)
    assert "np.int64" not in str(err.value)
