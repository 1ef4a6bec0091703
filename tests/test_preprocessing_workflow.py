"""End-to-end checks of the preprocessing outputs of the tiny workflow (session fixture ``tiny_results``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from megdecode.io import load_npy, read_tsv

pytestmark = pytest.mark.slow


def _subjects(results):
    return sorted(p.name.removeprefix("sub-") for p in (results / "preprocessed").glob("sub-*"))


def test_subject_arrays_follow_the_contract(tiny_results):
    stimuli = read_tsv(tiny_results / "stimuli" / "stimuli.tsv", dtype={"image_id": str, "concept": str})
    test_concepts = set(stimuli.loc[stimuli["concept_split"] == "test", "concept"])
    test_images = set(stimuli.loc[stimuli["role"] == "test", "image_id"])
    subjects = _subjects(tiny_results)
    assert subjects
    for sub in subjects:
        folder = tiny_results / "preprocessed" / f"sub-{sub}"
        meg = load_npy(folder / "meg.npy", mmap=True)
        trials = read_tsv(
            folder / "trials.tsv", dtype={"subject": str, "session": str, "run": str, "image_id": str}
        )
        info = json.loads((folder / "info.json").read_text())
        channels = read_tsv(folder / "channels.tsv")
        assert isinstance(meg, np.memmap) and meg.dtype == np.float32
        assert meg.shape == (len(trials), len(channels), 181) == tuple(info["shape"])
        assert info["sfreq"] == 120.0 and info["n_times"] == 181 and info["tmin"] == -0.5
        assert np.isfinite(meg).all() and np.abs(meg).max() <= 20.0
        assert channels[["x", "y"]].min().min() >= 0 and channels[["x", "y"]].max().max() <= 1
        assert "MRO11-1609" not in set(channels["name"])
        assert set(trials["split"]) == {"train", "val", "test_small", "test_large"}
        assert "catch" not in set(trials["trial_type"])
        # no test concept or test image reaches train/val
        fit = trials[trials["split"].isin(["train", "val"])]
        assert not set(fit["concept"]) & test_concepts and not set(fit["image_id"]) & test_images
        # small test set: one row per test image, repetitions averaged (one per session)
        small = trials[trials["split"] == "test_small"]
        assert small["image_id"].is_unique and set(small["image_id"]) == test_images
        assert (small["n_averaged"] == len(set(trials["session"].dropna()))).all()
        # the scaler was fitted on train rows: their median per channel is ~0 after scaling
        train = meg[np.flatnonzero(trials["split"] == "train")]
        assert np.abs(np.median(train, axis=(0, 2))).max() < 1e-3


def test_qc_outputs_exist_and_agree(tiny_results):
    for sub in _subjects(tiny_results):
        runs = read_tsv(tiny_results / "qc" / f"sub-{sub}_runs.tsv", dtype={"session": str, "run": str})
        assert (runs["status"] == "ok").all() and (runs["dropped_channels"] == "MRO11-1609").all()
        trials = read_tsv(tiny_results / "preprocessed" / f"sub-{sub}" / "trials.tsv")
        singles = trials[trials["split"] != "test_small"]
        assert len(singles) == int(runs["n_exp"].sum())
        html = (tiny_results / "qc" / f"sub-{sub}_report.html").read_text()
        for title in ("PSD before/after filtering", "Evoked response", "Topomaps", "Dropped channels"):
            assert title in html
        epochs = sorted(
            (tiny_results / "derivatives" / "megdecode" / f"sub-{sub}").glob("ses-*/meg/*_epo.fif")
        )
        assert len(epochs) == len(runs)


def test_evoked_peak_at_the_simulated_latency(tiny_results):
    """The image-independent evoked response peaks at the simulator's latency (within 1.5 output samples).

    Catches misaligned events (onset vs photodiode-corrected sample, the ~150 ms trigger offset) and
    a wrong epoch time axis.
    """
    truth = json.loads((tiny_results / "sourcedata" / "ground_truth.json").read_text())
    latency = truth["components"]["evoked"]["latencies_s"][0]
    for sub in _subjects(tiny_results):
        meg = load_npy(tiny_results / "preprocessed" / f"sub-{sub}" / "meg.npy")
        trials = read_tsv(tiny_results / "preprocessed" / f"sub-{sub}" / "trials.tsv")
        gfp = meg[(trials["split"] == "train").to_numpy()].mean(axis=0).std(axis=0)
        times = -0.5 + np.arange(181) / 120.0
        assert abs(times[np.argmax(gfp)] - latency) <= 1.5 / 120.0
