"""Target `things_eeg2` on a tiny twin in the published formats: BIDS-EEG and the recipe through Snakemake."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import yaml
from conftest import REPO, run_snakemake
from test_things_eeg2 import VALIDATOR, validate
from things_eeg2_twin import recipe, write_twin

from megdecode.artifacts.eeg import read_partition
from megdecode.datasets.things_eeg2 import ThingsEeg2Reader
from megdecode.preprocessing.eeg import preprocess_subject


def test_things_eeg2_target_converts_and_preprocesses_a_twin(tmp_path: Path) -> None:
    twin = write_twin(tmp_path / "things-eeg2", subjects=("01", "02"), sessions=("01", "02"))
    section = {k: v for k, v in dataclasses.asdict(twin.settings).items()}
    section |= {"subjects": list(twin.settings.subjects), "sessions": list(twin.settings.sessions)}
    section["preprocessing"] = {"max_repetitions_test": 5}
    configfile = tmp_path / "config.yaml"
    base = yaml.safe_load(
        (REPO / "config" / "tiny.yaml").read_text()
    )  # any valid study: the target reads none
    configfile.write_text(yaml.safe_dump({**base, "things_eeg2": section}))
    results = tmp_path / "results"
    run_snakemake(results, "things_eeg2", configfile=configfile, timeout=600)

    bids = results / "things_eeg2" / "bids"
    assert (
        json.loads((bids / "dataset_description.json").read_text())["Authors"][0] == "Alessandro T. Gifford"
    )
    assert len(sorted(bids.glob("sub-*/ses-*/eeg/*_eeg.vhdr"))) == 8  # 2 subjects x 2 sessions x 2 tasks
    if VALIDATOR.exists():
        report = validate(bids)
        assert [i for i in report["issues"]["issues"] if i["severity"] == "error"] == []
    reader = ThingsEeg2Reader(twin.root, twin.settings)
    expected = preprocess_subject(reader, "02", recipe(max_repetitions_test=5))
    for partition in ("training", "test"):
        got = read_partition(results / "things_eeg2" / "preprocessed" / f"sub-02_{partition}.npz")
        np.testing.assert_allclose(
            got.eeg, expected[partition][0], rtol=1e-5, atol=1e-6 * np.abs(got.eeg).max()
        )
        assert got.ch_names == expected[partition][1]
    assert (
        "Nothing to be done" in run_snakemake(results, "things_eeg2", "-n", configfile=configfile).stdout + ""
    )
