"""The per-trial log written as trials come, the online model folder and the ``megdecode online`` command
(replay mode; the LSL mode is tested in tests/test_lsl.py, inside a network namespace)."""

from __future__ import annotations

import colorsys
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import brain_config
from test_online import (
    BRAIN,
    CAUSAL,
    CODES,
    GALLERY,
    MEG,
    MODEL,
    SFREQ,
    STREAM,
    _decoder,
    _feed,
    _with_photodiode,
)
from test_preprocessing import pre_cfg

from megdecode.config import section_defaults
from megdecode.online.cli import LIVE_COLUMNS, main
from megdecode.online.trial_log import TrialLog, read_trial_log

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BRAIN_CFG = {**section_defaults("brain_module"), **dataclasses.asdict(brain_config(
    spatial_channels=8, fourier_freqs=2, hidden=12, n_blocks=2, out_channels=16
))}  # fmt: skip
ONSETS = {
    "stim_channel": "UPPT001",
    "trigger_codes": CODES,
    "photodiode_channel": "UADC016-2104",
    "photodiode_max_lag_s": 0.1,
    "photodiode_threshold": 0.5,
}


def write_test_online_model(folder: Path, phase: str = "causal", images_root: Path | None = None) -> Path:
    """An online model folder of tests/test_online.py's brain module, scaler and gallery (subject 01), with
    trigger and photodiode onsets; gallery images written under ``images_root`` when given."""
    from megdecode.artifacts.brain_model import save_trained_brain
    from megdecode.artifacts.online_model import OnlineModelRecord, save_online_model

    weights = folder.parent / f"{folder.name}-model.safetensors"
    state = {f"brain.{k}": v for k, v in BRAIN.state_dict().items()}
    save_trained_brain(weights, state, BRAIN_CFG, {}, 0, ["01", "02"], [8])
    images = {str(i): f"{i}.png" for i in GALLERY.image_ids}
    if images_root is not None:
        from PIL import Image

        images_root.mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(images.values()):  # one colour each, around the hue circle
            colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / len(images), 0.8, 0.9))
            Image.new("RGB", (16, 16), colour).save(images_root / name)
    record = OnlineModelRecord(
        subject="01", backbone="test_latents", seed=0, gallery_split="test_large",
        preprocessing=pre_cfg(phase=phase, raw_sfreq=SFREQ), recorded_sfreq=SFREQ, channels=MEG,
        center=MODEL.center, scale=MODEL.scale, onsets=ONSETS, images=images,
    )  # fmt: skip
    save_online_model(folder, weights, record, GALLERY)
    return folder


def write_recording(path: Path, stream: np.ndarray) -> np.ndarray:
    """``stream`` (rows: STREAM) saved as a FIF recording; returns what the file holds (float32)."""
    import mne

    info = mne.create_info(STREAM, SFREQ, ["misc", *["mag"] * len(MEG), "stim"])
    mne.io.RawArray(stream, info, verbose="error").save(path, verbose="error")
    return mne.io.read_raw_fif(path, preload=True, verbose="error").get_data()


# --- the trial log --------------------------------------------------------------------------------------


def test_each_trial_is_on_disk_before_the_next_one_is_decoded(tmp_path, monkeypatch):
    """The decoder's hook writes each trial; when the next trial is decoded, every earlier row can be read
    back from the file by another reader, and each row was fsync-ed."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    stream, _, _, _ = _with_photodiode()
    path = tmp_path / "trials.tsv"
    seen_on_disk = []
    with TrialLog(path, ["onset_sample", "top5", "latency_ms", "settling"]) as trial_log:
        synced.clear()  # the header and the folder

        def record(trial):
            seen_on_disk.append(len(read_trial_log(path)) if trial_log.n_rows else 0)
            trial_log.write({
                "onset_sample": trial.onset_sample, "top5": ",".join(trial.top5_ids),
                "latency_ms": 1e3 * trial.latency_s, "settling": trial.settling,
            })  # fmt: skip

        decoder = _feed(_decoder(photodiode_channel="UADC016-2104", on_record=record), stream, [12])
    assert seen_on_disk == list(range(len(decoder.decoded))) and len(synced) == len(decoder.decoded) == 7
    table = read_trial_log(path)
    assert table["onset_sample"].tolist() == [t.onset_sample for t in decoder.decoded]
    assert table["top5"].tolist() == [",".join(t.top5_ids) for t in decoder.decoded]
    assert table["settling"].isna().all()  # clean windows: empty, read back as missing


def test_trial_log_never_overwrites_a_session_and_appends_only_to_its_own_kind(tmp_path):
    path = tmp_path / "trials.tsv"
    with TrialLog(path, ["a", "b"]) as first:
        first.write({"a": 1, "b": float("nan")})
        first.write({"a": "x\ty", "b": 0.1234567891})
    assert path.read_text() == "a\tb\n1\tn/a\nx y\t0.123457\n"
    with pytest.raises(FileExistsError, match="already holds trials of another session"):
        TrialLog(path, ["a", "b"])
    with pytest.raises(ValueError, match=r"has the columns \['a', 'b'\]"):
        TrialLog(path, ["a", "c"], mode="append")
    with TrialLog(path, ["a", "b"], mode="append") as more:
        more.write({"b": 2})
    assert path.read_text().splitlines()[-1] == "n/a\t2"
    with (
        pytest.raises(KeyError, match=r"\['z'\] are not among"),
        TrialLog(path, ["a", "b"], mode="truncate") as t,
    ):
        t.write({"z": 1})
    assert path.read_text() == "a\tb\n"


# --- the online model folder and the command -------------------------------------------------------------


def test_online_model_folder_round_trip(tmp_path):
    from megdecode.artifacts.online_model import read_online_model

    online = read_online_model(write_test_online_model(tmp_path / "online_model"))
    assert online.subject == "01" and online.phase == "causal" and online.onsets == ONSETS
    assert online.subject_model.channels == MEG and online.subject_model.subject_index == 0
    np.testing.assert_array_equal(online.gallery.image_ids, GALLERY.image_ids)
    np.testing.assert_allclose(online.gallery.unit, GALLERY.unit, rtol=1e-6)
    x = torch.randn(1, len(MEG), CAUSAL.n_times())
    with torch.no_grad():
        np.testing.assert_array_equal(
            online.subject_model.brain(x, torch.zeros(1, dtype=torch.long))["clip"],
            BRAIN(x, torch.zeros(1, dtype=torch.long))["clip"],
        )
    settings = online.settings(name="x")
    assert settings.photodiode_channel == "UADC016-2104" and settings.trigger_codes == CODES
    with pytest.raises(FileNotFoundError, match="is not an online model folder"):
        read_online_model(tmp_path)


def test_online_command_replays_a_recording_as_the_decoder_does(tmp_path, capsys):
    """`megdecode online --replay FILE` (a lab without LSL): trigger + photodiode onsets from the model's
    metadata, the seen images from --events, every trial in trials.tsv as the in-process decoder gives it."""
    model = write_test_online_model(tmp_path / "online_model")
    stream, onsets, _, types = _with_photodiode()
    recorded = write_recording(tmp_path / "run_raw.fif", stream)
    images = [f"img{k}" for k in range(len(onsets))]
    pd.DataFrame({"sample": onsets, "trial_type": types, "image_id": images}).to_csv(
        tmp_path / "events.tsv", sep="\t", index=False
    )
    out = tmp_path / "session"
    argv = ["online", "--model", str(model), "--replay", str(tmp_path / "run_raw.fif"), "--out", str(out),
            "--events", str(tmp_path / "events.tsv"), "--chunk", "7"]  # fmt: skip
    assert main(argv) == 0
    expected = _feed(_decoder(photodiode_channel="UADC016-2104"), recorded, [7])
    table = read_trial_log(out / "trials.tsv")
    assert list(table.columns) == LIVE_COLUMNS and (table["status"] == "decoded").all()
    assert table["onset_sample"].tolist() == [t.onset_sample for t in expected.decoded]
    assert table["top5"].tolist() == [",".join(t.top5_ids) for t in expected.decoded]
    seen = [images[list(onsets).index(t.onset_sample)] for t in expected.decoded]
    assert table["image_id"].tolist() == seen
    hits = [float(image in t.top5_ids) for image, t in zip(seen, expected.decoded, strict=True)]
    assert table["top5_hit"].tolist() == hits
    session = json.loads((out / "session.json").read_text())
    assert session["status"] == "ended" and session["trials_decoded"] == 7 and session["gallery_trials"] == 7
    assert session["top5_acc"] == round(float(np.mean(hits)), 4) and session["chance_top5"] == 0.25
    assert session["samples_received"] == stream.shape[1]
    assert "ended: " in capsys.readouterr().out
    # the same folder again: refused, nothing overwritten
    before = (out / "trials.tsv").read_bytes()
    assert main(argv) == 2 and "another session's trials" in capsys.readouterr().err
    assert (out / "trials.tsv").read_bytes() == before


def test_online_command_refuses_a_zero_phase_model_unless_told(tmp_path, capsys):
    model = write_test_online_model(tmp_path / "online_model", phase="zero")
    stream, _, _, _ = _with_photodiode()
    write_recording(tmp_path / "run_raw.fif", stream)
    argv = ["online", "--model", str(model), "--replay", str(tmp_path / "run_raw.fif")]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "preprocessing.phase: zero" in err and "--allow-zero-phase" in err
    assert not (tmp_path / "a" / "trials.tsv").exists()
    assert main([*argv, "--out", str(tmp_path / "b"), "--allow-zero-phase"]) == 0
    assert len(read_trial_log(tmp_path / "b" / "trials.tsv")) == 7


def test_online_command_decodes_without_dead_channels_up_to_the_limit(tmp_path, capsys):
    model = write_test_online_model(tmp_path / "online_model")
    stream, _, _, _ = _with_photodiode()
    write_recording(tmp_path / "run_raw.fif", stream)
    argv = [
        "online",
        "--model",
        str(model),
        "--replay",
        str(tmp_path / "run_raw.fif"),
        "--bad-channels",
        MEG[0],
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    assert "1 of the model's 6 channels cannot be decoded" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "b"), "--max-missing-channels", "0.2"]) == 0
    assert len(read_trial_log(tmp_path / "b" / "trials.tsv")) == 7


def test_megdecode_console_command_is_installed():
    """The [project.scripts] entry point (pip install -e . puts `megdecode` beside the interpreter)."""
    command = Path(sys.executable).parent / "megdecode"
    if not command.exists():
        pytest.skip(f"{command} not installed (pip install -e .)")
    proc = subprocess.run([str(command), "online", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--allow-zero-phase" in proc.stdout and "--lsl NAME" in proc.stdout
