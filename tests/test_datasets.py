"""The real-dataset readers (megdecode.datasets): one reader shape, each dataset a module."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from nsd_twin import NsdTwinSpec, make_nsd_twin, twin_settings

from megdecode.artifacts.stimuli import REQUIRED_COLUMNS
from megdecode.config import section_defaults
from megdecode.datasets import DatasetReader
from megdecode.datasets.nsd import NsdDataError, NsdReader
from megdecode.datasets.things import ThingsDataError, ThingsMegReader

STIMULI_COLUMNS = {*REQUIRED_COLUMNS, "concept", "exemplar", "concept_split"}
EVENTS = (
    "onset\tduration\ttrial_type\tvalue\tsample\n"
    "1.0\t0.5\texp\t10.0\t1200\n"
    "2.0\t0.5\tcatch\tN/A\t2400\n"
    "3.0\t0.5\ttest\t20.0\t3600\n"
)
IMAGES = (
    "things_image_nr\ttrial_type\tfile_path\tconcept\n"
    "10\texp\timages_meg/ant/ant_01b.jpg\tant\n"
    "20\ttest\timages_test_meg/bee_13n.jpg\tbee\n"
)


def _things(tmp_path: Path, runs: tuple[str, ...] = ("01", "02")) -> ThingsMegReader:
    """A THINGS-MEG-shaped BIDS tree of one subject, one session and ``runs`` (placeholder recordings)."""
    meg = tmp_path / "ds" / "sub-01" / "ses-01" / "meg"
    meg.mkdir(parents=True)
    for run in runs:
        stem = f"sub-01_ses-01_task-main_run-{run}"
        (meg / f"{stem}_meg.ds").mkdir()
        (meg / f"{stem}_meg.json").write_text('{"SamplingFrequency": 1200.0}')
        (meg / f"{stem}_events.tsv").write_text(EVENTS)
    (tmp_path / "images.tsv").write_text(IMAGES)
    return ThingsMegReader(tmp_path / "ds", tmp_path / "images.tsv", ["01"], ["01"], list(runs), "main")


def _nsd(tmp_path: Path) -> NsdReader:
    spec = NsdTwinSpec()
    layout = make_nsd_twin(tmp_path / "nsd", spec)
    settings = twin_settings(spec, layout.root, section_defaults("nsd"))
    return NsdReader(settings, list(spec.subjects), ["01", "02"], seed=0)


def test_every_reader_has_the_reader_shape(tmp_path: Path) -> None:
    for reader in (_things(tmp_path / "things"), _nsd(tmp_path / "nsd")):
        assert isinstance(reader, DatasetReader)
        inventory = reader.inventory()
        assert {"subject", "session"} <= set(inventory.columns) and len(inventory)
        stimuli = reader.stimuli_table()
        assert set(stimuli.columns) >= STIMULI_COLUMNS and stimuli["image_id"].is_unique
        assert set(stimuli["role"]) <= {"exp", "test"}
        trials = reader.trials(str(inventory["subject"].iloc[0]))
        assert {"subject", "session"} <= set(trials.columns) and len(trials)


def test_things_reader_turns_events_into_trials_and_images(tmp_path: Path) -> None:
    reader = _things(tmp_path)
    trials = reader.trials("01")
    assert trials["run"].tolist() == ["01"] * 3 + ["02"] * 3
    assert trials["trial_type"].tolist() == ["exp", "catch", "test"] * 2
    stimuli = reader.stimuli_table()
    assert stimuli.set_index("value")["image_id"].to_dict() == {10: "ant_01b", 20: "bee_13n"}
    assert stimuli.set_index("concept")["concept_split"].to_dict() == {"ant": "train", "bee": "test"}


def test_things_reader_names_what_is_missing(tmp_path: Path) -> None:
    reader = _things(tmp_path, runs=("01",))
    with pytest.raises(ThingsDataError, match=r"sub-01 ses-01 run-02: no recording"):
        ThingsMegReader(reader.bids_root, None, ["01"], ["01"], ["01", "02"], "main").inventory()
    with pytest.raises(ThingsDataError, match="set study.image_table"):
        ThingsMegReader(reader.bids_root, None, ["01"], ["01"], ["01"], "main").stimuli_table()


def test_nsd_reader_inventory_trials_and_stimuli_agree(tmp_path: Path) -> None:
    reader = _nsd(tmp_path)
    inventory = reader.inventory()
    assert len(inventory) == len(reader.subjects) * 2 and all(Path(p).is_file() for p in inventory["betas"])
    trials = pd.concat([reader.trials(s) for s in reader.subjects], ignore_index=True)
    stimuli = reader.stimuli_table()
    assert set(stimuli["image_id"]) == set(trials["image_id"])
    test_images = set(trials.loc[trials["split"] == "test", "image_id"])
    assert set(stimuli.loc[stimuli["role"] == "test", "image_id"]) == test_images
    Path(inventory["betas"].iloc[-1]).unlink()
    with pytest.raises(NsdDataError, match="1 configured file"):
        reader.inventory()
