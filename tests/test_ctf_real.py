"""The real CTF path on a real 2 s CTF-275 recording (``../shared/ctf-sample``, see its SOURCES.md).

Every test that needs the recording skips when it is absent; it is read in place or copied into
``tmp_path`` (never into the repository).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED

from megdecode.config import section_defaults
from megdecode.datasets.things import meg_picks
from megdecode.preprocessing.params import PreprocessingParams
from megdecode.preprocessing.reader import BadRunError, open_raw, pick_meg_channels
from megdecode.preprocessing.run import block_reader, preprocess_run
from megdecode.preprocessing.signal import epoch_continuous

CTF = SHARED / "ctf-sample" / "testdata_ctf_short_discontinuous.ds"
needs_ctf = pytest.mark.skipif(not CTF.is_dir(), reason=f"real CTF sample not present: {CTF}")
VALIDATOR = Path(sys.executable).with_name("bids-validator-deno")
CTF_NAME = re.compile(r"^M[LRZ][A-Z]\d\d-\d{4}$")  # MLC11-4304
# onsets (s) where a -0.5..1.0 s epoch fits in the 2.0 s recording
ONSETS = np.array([0.5, 0.61, 0.75, 0.9, 1.0])


def pre_cfg(**changes) -> dict:
    return {**section_defaults("preprocessing"), **changes}


def relative_rms(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(((a - ref) ** 2).mean() / (ref**2).mean()))


# --- (a) open through the project's reader, pick the MEG sensors ------------------------------------------


@needs_ctf
def test_reader_picks_exactly_the_273_axial_gradiometers():
    from mne.io.constants import FIFF

    raw = open_raw(CTF, "ctf-sample")
    assert raw.info["sfreq"] == 1200.0 and raw.n_times == 2402
    pick = pick_meg_channels(raw.info, [], "ctf-sample")
    chs = raw.info["chs"]
    # independent of mne.pick_types: the header's own kind and coil type of a CTF axial gradiometer
    axial = [
        c["ch_name"]
        for c in chs
        if c["kind"] == FIFF.FIFFV_MEG_CH and c["coil_type"] == FIFF.FIFFV_COIL_CTF_GRAD
    ]
    assert len(pick.names) == 273 and pick.names == axial and pick.dropped == []
    assert all(CTF_NAME.match(n) for n in pick.names), [n for n in pick.names if not CTF_NAME.match(n)][:5]
    assert pick.names[0] == "MLC11-4304"
    kept = set(pick.names)
    refs = {c["ch_name"] for c in chs if c["kind"] == FIFF.FIFFV_REF_MEG_CH}
    assert len(refs) == 28 and not kept & refs
    assert not any(n.startswith(("UADC", "UPPT", "UDIO", "EEG")) for n in kept)
    assert len(kept) == 273 and len(chs) - len(kept) == 356 - 273
    # the name-based picker of the THINGS-MEG reader agrees with the header-kind picker
    assert meg_picks(raw, drop=()) == pick.names
    # a configured bad channel given without its CTF suffix drops the one sensor
    assert pick_meg_channels(raw.info, ["MRO11"], "ctf-sample").dropped == ["MRO11-4304"]


# --- (c) sourcedata -> BIDS with mne-bids, validator ------------------------------------------------------


@pytest.fixture(scope="module")
def ctf_bids(tmp_path_factory) -> Path:
    """The CTF sample written as a BIDS run by mne-bids (``.ds`` folder renamed, sidecars)."""
    if not CTF.is_dir():
        pytest.skip(f"real CTF sample not present: {CTF}")
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    root = tmp_path_factory.mktemp("ctf") / "bids"
    raw = mne.io.read_raw_ctf(CTF, verbose="error")
    path = BIDSPath(subject="01", session="01", task="main", run="01", datatype="meg", root=root)
    write_raw_bids(raw, path, overwrite=True, verbose="error")
    return root


@needs_ctf
def test_mne_bids_conversion_of_ctf_is_valid_bids(ctf_bids):
    import json
    import subprocess

    ds = ctf_bids / "sub-01/ses-01/meg/sub-01_ses-01_task-main_run-01_meg.ds"
    assert ds.is_dir() and (ds / "sub-01_ses-01_task-main_run-01_meg.meg4").is_file()
    raw = open_raw(ds, "sub-01_ses-01_task-main_run-01")
    assert len(pick_meg_channels(raw.info, [], "r").names) == 273
    if not VALIDATOR.exists():
        pytest.skip("bids-validator-deno not installed (pip install .[test])")
    proc = subprocess.run(
        [str(VALIDATOR), str(ctf_bids), "--format", "json"], capture_output=True, text=True, timeout=300
    )
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [], errors
    assert report["summary"]["subjects"] == ["01"]


# --- (b) preprocess a run built from it -----------------------------------------------------------------


def _run_inputs(root: Path, folder: Path) -> tuple[Path, Path, Path]:
    """events.tsv (onsets in ONSETS) and a stimuli table for the BIDS CTF run."""
    stem = "sub-01_ses-01_task-main_run-01"
    meg = root / "sub-01/ses-01/meg"
    events = folder / f"{stem}_events.tsv"
    samples = np.round(ONSETS * 1200).astype(int)
    pd.DataFrame(
        {
            "onset": ONSETS,
            "duration": 0.5,
            "trial_type": ["exp", "exp", "test", "exp", "catch"],
            "value": [1, 2, 3, 1, None],
            "sample": samples,
        }
    ).to_csv(events, sep="\t", index=False, na_rep="n/a")
    stimuli = folder / "stimuli.tsv"
    pd.DataFrame(
        {
            "image_id": ["a", "b", "c"],
            "file": ["a.png", "b.png", "c.png"],
            "concept": ["ca", "cb", "cc"],
            "role": ["exp", "exp", "test"],
            "value": [1, 2, 3],
            "concept_split": ["train", "train", "test"],
        }
    ).to_csv(stimuli, sep="\t", index=False)
    return meg / f"{stem}_meg.ds", events, stimuli


@needs_ctf
@pytest.mark.parametrize("bad_channels", [[], ["MRO11"]])
def test_preprocess_real_ctf_run(ctf_bids, tmp_path, bad_channels):
    import mne

    raw_path, events, stimuli = _run_inputs(ctf_bids, tmp_path)
    out = tmp_path / "out"
    qc = preprocess_run(
        raw_path, events, stimuli, out / "epo.fif", out / "qc.tsv", out / "psd.npz",
        pre_cfg(raw_sfreq=1200.0, bad_channels=bad_channels),
    )  # fmt: skip
    n_ch = 273 - len(bad_channels)
    assert qc.loc[0, "status"] == "ok" and qc.loc[0, "n_channels_kept"] == n_ch
    ep = mne.read_epochs(out / "epo.fif", verbose="error")
    data = ep.get_data()
    assert data.shape == (len(ONSETS), n_ch, 181) and ep.info["sfreq"] == 120.0
    assert np.isfinite(data).all() and np.abs(data).max() > 0
    assert all(CTF_NAME.match(n) for n in ep.ch_names)
    assert ep.times[0] == pytest.approx(-0.5) and ep.times[-1] == pytest.approx(1.0)


# --- recordings shorter than the high-pass filter ---------------------------------------------------------


def _mne_chain(raw, picks, samples, pad="reflect_limited") -> np.ndarray:
    """MNE's own chain: band-pass the continuous raw, Epochs with baseline, decimate to 120 Hz."""
    import mne

    filt = raw.copy().load_data().pick(picks).filter(0.1, 40.0, pad=pad, verbose="error")
    events = np.column_stack([samples, np.zeros_like(samples), np.ones_like(samples)])
    ep = mne.Epochs(filt, events, tmin=-0.5, tmax=1.0, baseline=(None, 0), preload=True, verbose="error")
    return ep.decimate(int(raw.info["sfreq"] // 120)).get_data()


@needs_ctf
def test_short_real_recording_matches_mne_chain():
    """2 s recording, 33 s high-pass filter: our epochs equal MNE's as closely as MNE's own padding
    variants agree with each other (measured: reflect_limited vs edge 0.020; before the fix ours 0.54)."""
    raw = open_raw(CTF, "ctf-sample")
    params = PreprocessingParams.from_config(pre_cfg())
    pick = pick_meg_channels(raw.info, [], "ctf-sample")
    samples = np.round(ONSETS * 1200).astype(np.int64)
    read, rows = block_reader(raw, pick.picks)
    ours = epoch_continuous(
        read, raw.n_times, int(rows.max()) + 1, 1200.0, samples, params, "ctf", rows=rows
    ).data.astype(np.float64)
    ref = _mne_chain(raw, pick.picks, samples)
    spread = relative_rms(_mne_chain(raw, pick.picks, samples, pad="edge"), ref)
    assert 0.005 < spread < 0.05, spread  # MNE's own padding variants
    rel = relative_rms(ours, ref)
    assert rel < max(spread, 0.01), (rel, spread)


@pytest.mark.parametrize("dc", [0.0, 50.0])
def test_short_synthetic_recording_matches_mne_chain(dc):
    """Same check without the real file: 2.5 s of noise with a DC offset (CTF channels carry large ones)."""
    import mne

    rng = np.random.default_rng(3)
    sfreq, n = 1200.0, 3000
    data = np.cumsum(rng.standard_normal((4, n)), axis=1) * 0.05 + rng.standard_normal((4, n)) + dc
    data += dc * np.arange(1, 5)[:, None]
    info = mne.create_info([f"MLC1{i}-4304" for i in range(4)], sfreq, "mag")
    raw = mne.io.RawArray(data, info, verbose="error")
    samples = np.array([600, 777, 1000, 1500, 1799])
    params = PreprocessingParams.from_config(pre_cfg())
    ours = epoch_continuous(lambda a, b: data[:, a:b], n, 4, sfreq, samples, params).data.astype(np.float64)
    ref = _mne_chain(raw, np.arange(4), samples)
    assert relative_rms(ours, ref) < 0.01, relative_rms(ours, ref)


# --- damaged or misnamed CTF folders: clear errors that name the file -----------------------------------


def _copy_ds(folder: Path, stem: str, rename: bool = True) -> Path:
    """Copy the sample to ``folder/<stem>.ds``; with ``rename`` its inner files take the new stem too."""
    import shutil

    dst = folder / f"{stem}.ds"
    shutil.copytree(CTF, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
        if rename and f.name.startswith(CTF.stem + "."):
            f.rename(dst / (stem + f.name[len(CTF.stem) :]))
    return dst


@needs_ctf
def test_ctf_folder_whose_files_keep_the_old_name_says_rename(tmp_path):
    ds = _copy_ds(tmp_path, "sub-01_task-main_run-01_meg", rename=False)
    with pytest.raises(BadRunError) as err:
        open_raw(ds, "sub-01_task-main_run-01")
    msg = str(err.value)
    assert str(ds) in msg and "testdata_ctf_short_discontinuous.res4" in msg
    assert "sub-01_task-main_run-01_meg.res4" in msg and "rename" in msg and "write_raw_bids" in msg


@needs_ctf
@pytest.mark.parametrize("keep_bytes", ["one_trial", "mid_trial"])
def test_truncated_ctf_recording_says_truncated(tmp_path, keep_bytes):
    """A .meg4 cut at a trial boundary opened silently as a 1 s recording; cut mid-trial, MNE said only
    'not an even multiple of the trial size'."""
    ds = _copy_ds(tmp_path, "sub-01_task-main_run-01_meg")
    meg4 = ds / "sub-01_task-main_run-01_meg.meg4"
    trial = (meg4.stat().st_size - 8) // 2  # 2 trials of 1201 samples x 356 channels, 8-byte header
    with meg4.open("r+b") as f:
        f.truncate(8 + trial + (0 if keep_bytes == "one_trial" else 1000))
    with pytest.raises(BadRunError) as err:
        open_raw(ds, "sub-01_task-main_run-01")
    msg = str(err.value)
    assert "truncated or corrupt" in msg and str(meg4) in msg and "re-copy" in msg
    assert "2 trials" in msg, msg
