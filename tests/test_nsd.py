"""The Natural Scenes Dataset reader (megdecode.datasets.nsd) on layout twins (tests/nsd_twin.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest
from nsd_twin import (
    FULL_SIZE,
    NsdTwinSpec,
    design_arrays,
    make_nsd_twin,
    roi_volume,
    trial_images,
    true_value,
    twin_settings,
    write_betas,
    write_nifti,
)

from megdecode.artifacts.fmri import FmriSubject, read_fmri_subject, write_fmri_subject
from megdecode.config import load_config, section_defaults
from megdecode.datasets import nsd

REPO = Path(__file__).resolve().parents[1]


def _twin(tmp_path: Path, **kw) -> tuple[nsd.NsdLayout, nsd.NsdSettings, NsdTwinSpec]:
    spec = NsdTwinSpec(**kw)
    layout = make_nsd_twin(tmp_path / "nsd", spec)
    return layout, twin_settings(spec, layout.root, section_defaults("nsd")), spec


def test_layout_builds_nsds_documented_paths():
    layout = nsd.NsdLayout(Path("NSD"))
    assert layout.design() == Path("NSD/nsddata/experiments/nsd/nsd_expdesign.mat")
    assert layout.betas("01", "1") == Path(
        "NSD/nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.hdf5"
    )
    nifti = nsd.NsdLayout(Path("NSD"), betas_format="nii.gz")
    assert nifti.betas("7", "40").name == "betas_session40.nii.gz"
    assert layout.roi_mask("05") == Path("NSD/nsddata/ppdata/subj05/func1pt8mm/roi/nsdgeneral.nii.gz")
    assert layout.stimuli() == Path("NSD/nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")
    assert "aws s3 cp s3://natural-scenes-dataset/nsddata/ppdata/subj05" in layout.download_hint(
        layout.roi_mask("05")
    )
    for bad in ("09", "S1", "00"):
        with pytest.raises(nsd.NsdDataError, match="not an NSD subject"):
            layout.roi_mask(bad)


def test_schema_defaults_are_nsds_full_size():
    settings = nsd.NsdSettings(**section_defaults("nsd"))
    assert (settings.trials_per_session, settings.images_per_subject) == (750, 10000)
    assert (settings.n_stimuli, settings.n_shared, settings.image_size, settings.betas_scale) == (
        73000,
        1000,
        425,
        300,
    )


@pytest.mark.parametrize("v73", [False, True])
def test_design_file_reads_v5_and_v73(tmp_path, v73):
    layout, settings, spec = _twin(tmp_path, v73=v73)
    design = nsd.read_design(layout.design(), settings)
    arrays = design_arrays(spec)
    np.testing.assert_array_equal(design.masterordering, arrays["masterordering"].ravel())
    np.testing.assert_array_equal(design.subjectim, arrays["subjectim"])
    np.testing.assert_array_equal(design.sharedix, arrays["sharedix"].ravel())
    assert design.n_sessions == spec.n_sessions


def test_trial_table_follows_the_design(tmp_path):
    layout, settings, spec = _twin(tmp_path, n_sessions=3, trials_per_session=20, n_shared=4)
    design = nsd.read_design(layout.design(), settings)
    table = nsd.trial_table(design, "01", ["01", "02", "03"], 0.25, seed=0)
    assert list(table.columns) == nsd.TRIAL_COLUMNS and len(table) == 60
    assert table.groupby("session")["trial"].apply(list).map(lambda t: t == list(range(1, 21))).all()
    # trial i of session s is masterordering[20 (s-1) + i - 1], mapped through subjectim (1-based): computed
    # by the twin trial by trial, from the arrays it wrote, not by the reader's expression
    expected = np.array(trial_images(design_arrays(spec), "01"))
    np.testing.assert_array_equal(table["nsd_id"], expected)
    assert table["image_id"].iloc[0] == f"nsd{expected[0]:05d}"
    # the whole design shows each image 3 times: repetitions 1, 2, 3 in presentation order
    assert sorted(table.groupby("image_id")["repetition"].apply(list).map(tuple).unique()) == [(1, 2, 3)]
    test = table["split"] == "test"
    assert set(table.loc[test, "nsd_id"]) == set(design.sharedix)
    fit_images = set(table.loc[~test, "image_id"])
    assert not fit_images & set(table.loc[test, "image_id"])
    assert (table.groupby("image_id")["split"].nunique() == 1).all()
    n_val = table.loc[table["split"] == "val", "image_id"].nunique()
    assert n_val == round(0.25 * len(fit_images))
    again = nsd.trial_table(design, "01", ["01", "02", "03"], 0.25, seed=0)
    assert again.equals(table)
    other = nsd.trial_table(design, "01", ["01", "02", "03"], 0.25, seed=1)
    assert not other["split"].equals(table["split"])
    with pytest.raises(nsd.NsdDataError, match="describes 3 sessions"):
        nsd.trial_table(design, "01", ["04"], 0.25, seed=0)


@pytest.mark.parametrize("fmt", ["hdf5", "nii.gz"])
def test_subject_betas_are_the_roi_voxels_in_percent_signal_change(tmp_path, fmt):
    layout, settings, spec = _twin(tmp_path, subjects=("02",), betas_format=fmt)
    subject = nsd.load_subject(layout, settings, "02", ["01", "02"], seed=0)
    assert isinstance(subject, FmriSubject)
    mask = roi_volume(spec, "02") > 0
    coords = np.argwhere(mask)
    np.testing.assert_array_equal(subject.coords, coords)
    assert subject.betas.dtype == np.float32 and subject.betas.shape == (24, mask.sum())
    for k, session in enumerate((1, 2)):
        truth = true_value("02", session, spec.volume, spec.trials_per_session)  # (x, y, z, trials)
        want = truth[coords[:, 0], coords[:, 1], coords[:, 2], :].T
        rows = slice(k * 12, (k + 1) * 12)
        np.testing.assert_allclose(subject.betas[rows], want, atol=1e-6)
    assert subject.info["source"] == "nsd" and set(subject.roi) == {"nsdgeneral"}
    write_fmri_subject(tmp_path / "out", subject)
    back = read_fmri_subject(tmp_path / "out")
    np.testing.assert_array_equal(back.betas, subject.betas)
    assert back.trials["split"].tolist() == subject.trials["split"].tolist()


def test_hdf5_and_nifti_betas_give_the_same_subject(tmp_path):
    a = nsd.read_subject(*_twin(tmp_path / "a", betas_format="hdf5")[:2], "01", ["01", "02"], 0)
    b = nsd.read_subject(*_twin(tmp_path / "b", betas_format="nii.gz")[:2], "01", ["01", "02"], 0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[1].equals(b[1])


@pytest.mark.parametrize("fmt", ["hdf5", "nii.gz"])
def test_betas_with_another_trial_count_than_the_design_is_an_error(tmp_path, fmt):
    layout, settings, spec = _twin(tmp_path, betas_format=fmt)
    bad = layout.betas("01", "02")
    write_betas(bad, true_value("01", 2, spec.volume, spec.trials_per_session), fmt, n_trials_override=10)
    with pytest.raises(nsd.NsdDataError) as err:
        nsd.read_subject(layout, settings, "01", ["01", "02"], 0)
    message = str(err.value)
    assert str(bad) in message and "10 trials" in message and "12 per session" in message
    assert str(layout.design()) in message


def test_a_missing_session_is_an_error_listing_every_missing_file(tmp_path):
    layout, settings, _ = _twin(tmp_path, n_sessions=3)
    layout.betas("01", "02").unlink()
    layout.betas("01", "03").unlink()
    with pytest.raises(nsd.NsdDataError) as err:
        nsd.read_subject(layout, settings, "01", ["01", "02", "03"], 0)
    message = str(err.value)
    assert "2 configured file(s) missing" in message and "study.sessions" in message
    for s in ("02", "03"):
        assert str(layout.betas("01", s)) in message
    assert "aws s3 cp s3://natural-scenes-dataset/nsddata_betas/ppdata/subj01/func1pt8mm/" in message


@pytest.mark.parametrize("fmt", ["hdf5", "nii.gz"])
def test_a_mask_of_another_shape_is_an_error(tmp_path, fmt):
    layout, settings, spec = _twin(tmp_path, betas_format=fmt)
    other = dataclasses.replace(spec, volume=(6, 8, 5))
    write_nifti(layout.roi_mask("01"), roi_volume(other, "01"))
    with pytest.raises(nsd.NsdDataError) as err:
        nsd.read_subject(layout, settings, "01", ["01"], 0)
    message = str(err.value)
    assert str(layout.roi_mask("01")) in message and str(layout.betas("01", "01")) in message
    assert "(6, 8, 5)" in message and "(6, 7, 5)" in message and "same subject" in message


def test_other_bad_inputs_name_the_file(tmp_path):
    layout, settings, spec = _twin(tmp_path)
    with h5py.File(layout.betas("01", "01"), "w") as f:  # converted copy: float betas
        f.create_dataset("betas", data=np.zeros((12, 5, 7, 6), dtype=np.float32))
    with pytest.raises(nsd.NsdDataError, match="int16"):
        nsd.read_subject(layout, settings, "01", ["01"], 0)
    bad_design = tmp_path / "design.mat"
    import scipy.io

    scipy.io.savemat(bad_design, {"masterordering": np.arange(1, 25)[None, :]})
    with pytest.raises(nsd.NsdDataError, match=r"lacks \['subjectim', 'sharedix'\]"):
        nsd.read_design(bad_design, settings)
    arrays = design_arrays(spec)
    scipy.io.savemat(bad_design, {**arrays, "subjectim": arrays["subjectim"] - 1})  # 0-based copy
    with pytest.raises(nsd.NsdDataError, match="1-based"):
        nsd.read_design(bad_design, settings)
    write_nifti(layout.roi_mask("01"), np.zeros(spec.volume, dtype=np.int16))
    with pytest.raises(nsd.NsdDataError, match="labels no voxel"):
        nsd.read_roi_mask(layout.roi_mask("01"))


def test_stimuli_are_read_lazily_by_1_based_index(tmp_path):
    layout, settings, spec = _twin(tmp_path)
    with h5py.File(layout.stimuli(), "r") as f:
        brick = f["imgBrick"][:]
    with nsd.open_stimuli(layout.stimuli(), settings) as stimuli:
        assert len(stimuli) == spec.n_stimuli
        np.testing.assert_array_equal(stimuli[1], brick[0])
        np.testing.assert_array_equal(stimuli[spec.n_stimuli], brick[-1])
        with pytest.raises(IndexError):
            stimuli[0]
    names = nsd.export_images(layout.stimuli(), [3, 1, 3], tmp_path / "images", settings)
    assert names == ["nsd00001.png", "nsd00003.png"]
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "images" / names[1])), brick[2])
    wrong = dataclasses.replace(settings, image_size=425)
    with pytest.raises(nsd.NsdDataError, match=r"expected uint8 \(\d+, 425, 425, 3\)"):
        nsd.NsdStimuli(layout.stimuli(), wrong)


def test_stimuli_table_marks_shared_images_as_test(tmp_path):
    layout, settings, _ = _twin(tmp_path)
    design = nsd.read_design(layout.design(), settings)
    trials = nsd.trial_table(design, "01", ["01", "02"], 0.0, 0)
    table = nsd.stimuli_table(trials)
    assert table["image_id"].is_unique and len(table) == trials["image_id"].nunique()
    test = table.loc[table["role"] == "test", "nsd_id"]
    assert set(test) == set(design.sharedix) and (table.loc[test.index, "concept_split"] == "test").all()


def test_full_size_design_plans_the_four_complete_subjects(tmp_path):
    """NSD's counts (30,000 trials, 8 x 10,000, 1,000 shared) on a placeholder twin, nsd.yaml's subjects."""
    config = load_config(REPO / "config" / "nsd.yaml")
    subjects, sessions = config["study"]["subjects"], config["study"]["sessions"]
    assert config["study"]["source"] == "nsd" and subjects == ["01", "02", "05", "07"] and len(sessions) == 40
    spec = NsdTwinSpec(subjects=tuple(subjects), placeholders=True, **FULL_SIZE)
    layout = make_nsd_twin(tmp_path / "nsd", spec)
    settings = nsd.NsdSettings(**{**config["nsd"], "root": str(layout.root)})
    assert (spec.images_per_subject, spec.n_shared, spec.n_stimuli) == (
        settings.images_per_subject,
        settings.n_shared,
        settings.n_stimuli,
    )
    design = nsd.read_design(layout.design(), settings)
    assert design.n_sessions == 40
    for subject in subjects:
        nsd.check_inputs(layout, subject, sessions)
        table = nsd.trial_table(design, subject, sessions, settings.val_fraction, config["seed"])
        assert len(table) == 30000 and table["image_id"].nunique() == 10000
        assert (table["split"] == "test").sum() == 3000 and table.loc[
            table["split"] == "test", "image_id"
        ].nunique() == 1000
        assert table["repetition"].max() == 3
    with pytest.raises(nsd.NsdDataError, match="completed 32 NSD sessions"):
        nsd.trial_table(design, "03", ["33"], settings.val_fraction, 0)
    # nsd.sessions first37: MindEye's and brain-diffuser's split - the shared images shown in sessions 1-37
    first37 = nsd.configured_sessions({"sessions": "first37"}, sessions)
    assert first37 == [f"{i:02d}" for i in range(1, 38)]
    table = nsd.trial_table(design, "01", first37, settings.val_fraction, config["seed"])
    shown = trial_images(design_arrays(spec), "01")[: 37 * 750]  # the twin's own trial-by-trial mapping
    shared = {int(i) for i in design_arrays(spec)["sharedix"].ravel()}
    expected = {i for i in shown if i in shared}
    assert set(table.loc[table["split"] == "test", "nsd_id"]) == expected and len(table) == 37 * 750
    with pytest.raises(nsd.NsdDataError, match="use one of"):
        nsd.configured_sessions({"sessions": "first38"}, sessions)


def test_fmri_source_nsd_goes_with_study_source_nsd():
    from megdecode.config import ConfigError
    from megdecode.plan import make_plan

    config = load_config(REPO / "config" / "nsd.yaml")
    plan = make_plan(config)
    assert plan.fmri is not None and plan.fmri.subjects == ["01", "02", "05", "07"]
    mixed = {**config, "study": {**config["study"], "source": "simulated"}}
    with pytest.raises(ConfigError, match="needs study.source 'nsd'"):
        make_plan(mixed)
