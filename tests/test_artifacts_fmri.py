"""The fMRI contract (megdecode.artifacts.fmri): round trip, and each inconsistency named with its file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from megdecode.artifacts.fmri import (
    BETAS,
    TRIALS,
    VOXELS,
    FmriSubject,
    assign_validation,
    read_fmri_subject,
    repetition_groups,
    write_fmri_subject,
    zscore_per_session,
)
from megdecode.artifacts.splits import LeakageError


def _subject(n_voxels: int = 5) -> FmriSubject:
    rows = []
    for session in ("01", "02"):
        for image, concept, split in (("a", "c1", "train"), ("b", "c2", "train"), ("c", "c3", "test")):
            rows.append((session, image, concept, split))
    trials = pd.DataFrame(rows, columns=["session", "image_id", "concept", "split"])
    trials["subject"] = "01"
    trials["repetition"] = trials.groupby("image_id").cumcount() + 1
    betas = np.random.default_rng(0).normal(size=(len(trials), n_voxels)).astype(np.float32)
    coords = np.stack([np.arange(n_voxels), np.zeros(n_voxels), np.ones(n_voxels)], axis=1).astype(int)
    return FmriSubject("01", betas, trials, coords, np.array(["V1"] * n_voxels), {"source": "simulated"})


def test_round_trip(tmp_path):
    subject = _subject()
    write_fmri_subject(tmp_path, subject)
    back = read_fmri_subject(tmp_path)
    np.testing.assert_array_equal(back.betas, subject.betas)
    np.testing.assert_array_equal(back.coords, subject.coords)
    assert back.roi.tolist() == ["V1"] * 5
    assert back.trials["repetition"].tolist() == [1, 1, 1, 2, 2, 2]
    assert back.trials["session"].tolist() == ["01"] * 3 + ["02"] * 3
    assert {k: v.tolist() for k, v in repetition_groups(back.trials).items()} == {"c": [2, 5]}


def test_trial_count_mismatch_names_both_files(tmp_path):
    write_fmri_subject(tmp_path, _subject())
    np.save(tmp_path / BETAS, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=rf"{BETAS} has 4 trials but .*{TRIALS} has 6 rows.*simulate_fmri"):
        read_fmri_subject(tmp_path)


def test_voxel_table_mismatch_and_missing_file(tmp_path):
    write_fmri_subject(tmp_path, _subject())
    np.save(tmp_path / BETAS, np.zeros((6, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{VOXELS}: 5 voxel rows for 3 voxels"):
        read_fmri_subject(tmp_path)
    (tmp_path / VOXELS).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{VOXELS} not found; rerun the rule simulate_fmri"):
        read_fmri_subject(tmp_path)


def test_test_concept_in_training_is_refused():
    subject = _subject()
    trials = subject.trials.copy()
    trials.loc[0, "concept"] = "c3"
    with pytest.raises(LeakageError, match="c3"):
        FmriSubject("01", subject.betas, trials, subject.coords)


def test_validation_moves_whole_images():
    trials = assign_validation(_subject().trials, 0.5, np.random.default_rng(0))
    per_image = trials.groupby("image_id")["split"].agg(set)
    assert per_image["c"] == {"test"}
    assert sorted(s for image in ("a", "b") for s in per_image[image]) == ["train", "val"]


def test_zscore_ignores_test_trials():
    subject = _subject()
    betas = subject.betas.copy()
    test = (subject.trials["split"] == "test").to_numpy()
    z = zscore_per_session(betas, subject.trials)
    betas[test] += 1000.0  # a test trial changes: the scaling of the other trials must not
    z2 = zscore_per_session(betas, subject.trials)
    np.testing.assert_allclose(z[~test], z2[~test])
    for session in ("01", "02"):
        fit = (subject.trials["session"] == session).to_numpy() & ~test
        np.testing.assert_allclose(z[fit].mean(axis=0), 0.0, atol=1e-5)
