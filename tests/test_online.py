"""megdecode.online: the online decoder equals the offline chain for any chunking; bad input is skipped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import brain_config
from test_preprocessing import pre_cfg

from megdecode.models import BrainModule
from megdecode.online import Event, Gallery, OnlineDecoder, OnlineSettings, SubjectModel
from megdecode.online.decoder import SKIP_CODE, SKIP_DIODE, SKIP_GAP, SKIP_NAN, settling_samples
from megdecode.preprocessing.assemble import apply_scaler
from megdecode.preprocessing.causal import epoch_causal
from megdecode.preprocessing.params import PreprocessingParams

CAUSAL = PreprocessingParams.from_config(pre_cfg(phase="causal", raw_sfreq=360.0))
SFREQ = 360.0
MEG = [f"MLC{i:02d}-1609" for i in range(6)]
STREAM = ["UADC016-2104", *MEG[::-1], "UPPT001"]  # another order than the model's, plus extras
CODES = {"exp": 1, "test": 2, "catch": 4}


def _brain() -> BrainModule:
    torch.manual_seed(3)
    cfg = brain_config(spatial_channels=8, fourier_freqs=2, hidden=12, n_blocks=2, out_channels=16)
    gen = torch.Generator().manual_seed(4)
    brain = BrainModule(cfg, torch.rand(len(MEG), 2, generator=gen), 2, CAUSAL.n_times(), (8,))
    for module in brain.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
    return brain.eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


BRAIN = _brain()
RNG = np.random.default_rng(5)
GALLERY = Gallery([f"img{i}" for i in range(20)], RNG.standard_normal((20, 8)))


def _recording(seconds=9.0, seed=1):
    """(stream rows, onsets, trial types): MEG-like noise with a drift and an evoked bump per trial."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SFREQ)
    meg = 2e-13 * rng.standard_normal((len(MEG), n)) + 3e-11 + 1e-13 * np.linspace(0, 5, n)
    onsets = np.arange(300, n - 400, 340)  # windows (-0.5..1 s) overlap
    pattern = ["exp", "test", "catch", "exp", "exp", "test", "exp", "exp", "exp"]
    types = [pattern[i % len(pattern)] for i in range(len(onsets))]
    for s in onsets:
        meg[:, s + 30 : s + 60] += 5e-13 * rng.standard_normal((len(MEG), 1))
    stim = np.zeros(n)
    for s, t in zip(onsets, types, strict=True):
        stim[s : s + 5] = CODES[t]
    stream = np.vstack([rng.standard_normal(n), meg[::-1], stim])
    return stream, onsets, types


def _center_scale():
    return np.full(len(MEG), 1e-14), np.full(len(MEG), 4e-13)


def _offline(stream, onsets, mask=None):
    """The workflow's chain: causal epochs of the run, the fitted scaler and clamp, the brain module
    (with a channel ``mask``: True where the sensor exists)."""
    meg = stream[1:-1][::-1]
    data = epoch_causal(lambda a, b: meg[:, a:b], meg.shape[1], len(MEG), SFREQ, onsets, CAUSAL).data
    center, scale = _center_scale()
    apply_scaler(data, center, scale, CAUSAL.clamp)
    with torch.no_grad():
        return BRAIN(torch.from_numpy(data), torch.zeros(len(data), dtype=torch.long), mask)["clip"].numpy()


MODEL = SubjectModel(BRAIN, 0, CAUSAL, MEG, *_center_scale())


def _decoder(
    events=None, on_record=None, model=MODEL, stream=STREAM, sfreq=SFREQ, **options
) -> OnlineDecoder:
    if events is None:
        options.setdefault("stim_channel", "UPPT001")
        options.setdefault("trigger_codes", CODES)
    settings = OnlineSettings(**options)
    return OnlineDecoder(model, GALLERY, sfreq, stream, settings, events=events, on_record=on_record)


def _feed(decoder, stream, sizes):
    a, i = 0, 0
    while a < stream.shape[1]:
        m = sizes[i % len(sizes)]
        decoder.feed(stream[:, a : a + m], first_sample=a)
        a, i = a + m, i + 1
    decoder.close()
    return decoder


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(
    "sizes", [[1], [12], [7, 1, 40, 3, 200], [10**7]], ids=["1", "12", "uneven", "whole"]
)
def test_online_equals_offline_for_any_chunking(sizes):
    stream, onsets, types = _recording()
    decoded = [i for i, t in enumerate(types) if t != "catch"]
    offline = _offline(stream, onsets[decoded])
    online = _feed(_decoder(), stream, sizes)
    assert [t.onset_sample for t in online.decoded] == onsets[decoded].tolist()
    assert [t.trial_type for t in online.decoded] == [types[i] for i in decoded]
    assert online.n_ignored == 1 and not online.skipped
    worst = max(_rel(t.latent, offline[k]) for k, t in enumerate(online.decoded))
    assert worst <= 1e-5, worst
    for k, trial in enumerate(online.decoded):
        sim = GALLERY.unit @ (offline[k] / np.linalg.norm(offline[k]))
        assert set(trial.top5_ids) == set(GALLERY.image_ids[np.argsort(-sim)[:5]])
        assert trial.t_top5_ready >= trial.t_last_sample_arrived


def test_events_list_and_plain_forward_give_the_same_trials():
    stream, onsets, types = _recording()
    events = [Event(int(s), t, f"img{k}") for k, (s, t) in enumerate(zip(onsets, types, strict=True))]
    by_events = _feed(_decoder(events=events, streaming=False), stream, [12])
    by_trigger = _feed(_decoder(), stream, [12])
    assert [t.image_id for t in by_events.decoded] == [f"img{k}" for k, t in enumerate(types) if t != "catch"]
    for a, b in zip(by_events.decoded, by_trigger.decoded, strict=True):
        assert a.onset_sample == b.onset_sample and _rel(a.latent, b.latent) <= 1e-5


def test_trials_decode_before_the_stream_goes_on():
    """Each trial comes out of the feed() call that brings its window's last sample, not later."""
    stream, onsets, _ = _recording()
    decoder = _decoder()
    for a in range(0, stream.shape[1], 12):
        for trial in decoder.feed(stream[:, a : a + 12]):
            assert a <= trial.last_sample < a + 12


def test_nan_chunk_skips_the_trials_it_touches_and_the_stream_goes_on():
    stream, onsets, types = _recording()
    clean = _feed(_decoder(), stream, [12])
    bad = stream.copy()
    bad[3, onsets[3] + 100 : onsets[3] + 110] = np.nan
    decoder = _feed(_decoder(settle_s=0.5), bad, [12])
    skipped = {s.onset_sample for s in decoder.skipped}
    assert decoder.skip_counts[SKIP_NAN] == len(skipped) >= 1 and onsets[3] in skipped
    assert len(decoder.decoded) + len(skipped) == len(clean.decoded)
    for trial, before in zip(decoder.decoded, clean.decoded, strict=False):
        if trial.onset_sample >= onsets[3]:
            break
        np.testing.assert_array_equal(trial.latent, before.latent)  # already decoded: untouched
    assert decoder.decoded[-1].onset_sample == onsets[-1] and np.isfinite(decoder.decoded[-1].latent).all()


def test_dropped_chunk_is_a_counted_gap():
    stream, onsets, _ = _recording()
    decoder = _decoder(settle_s=0.2)
    lost = range(onsets[4] + 120, onsets[4] + 144)
    for a in range(0, stream.shape[1], 12):
        if a in lost:
            continue  # a chunk that never arrives
        decoder.feed(stream[:, a : a + 12], first_sample=a)
    decoder.close()
    assert decoder.skip_counts[SKIP_GAP] >= 1
    assert onsets[4] in {s.onset_sample for s in decoder.skipped if s.reason == SKIP_GAP}
    assert decoder.decoded[-1].onset_sample == onsets[-1]
    assert decoder.n_received == stream.shape[1]  # counters stay aligned after the gap


def test_unknown_trigger_code_is_skipped_and_named():
    stream, onsets, _ = _recording()
    stream[-1, onsets[1] : onsets[1] + 5] = 7
    decoder = _feed(_decoder(), stream, [12])
    (skip,) = decoder.skipped
    assert skip.reason == SKIP_CODE and skip.code == 7 and "code 7 is not in the study" in skip.detail
    assert len(decoder.decoded) == 6


def _with_photodiode(seed=6, seconds=9.0):
    """The recording with its images shown 3-7 samples (8-19 ms) after their triggers, as a photodiode
    on row 0 sees them (a step of 1 on 0.002 noise, as the simulator's): (stream, image onsets)."""
    stream, onsets, types = _recording(seconds)
    rng = np.random.default_rng(seed)
    lags = rng.integers(3, 8, len(onsets))
    triggers = onsets - lags
    stream[-1] = 0
    diode = 0.002 * rng.standard_normal(stream.shape[1])
    for trigger, onset, trial_type in zip(triggers, onsets, types, strict=True):
        stream[-1, trigger : trigger + 5] = CODES[trial_type]
        diode[onset : onset + 180] += 1.0
    stream[0] = diode
    return stream, onsets, triggers, types


@pytest.mark.parametrize("sizes", [[12], [7, 1, 40, 3, 200], [10**7]], ids=["12", "uneven", "whole"])
def test_trigger_onsets_corrected_by_the_photodiode_equal_offline(sizes):
    """Trigger mode with the photodiode: the onsets the offline conversion writes (bids.photodiode_onsets
    on the whole run) and the latents of the offline chain at those onsets, for any chunking."""
    from megdecode.bids import photodiode_onsets

    stream, onsets, triggers, types = _with_photodiode()
    assert photodiode_onsets(stream[0], triggers, SFREQ, 0.1, 0.5, "run").tolist() == onsets.tolist()
    decoded = [i for i, t in enumerate(types) if t != "catch"]
    offline = _offline(stream, onsets[decoded])
    online = _feed(_decoder(photodiode_channel="UADC016-2104"), stream, sizes)
    assert [t.onset_sample for t in online.decoded] == onsets[decoded].tolist() and not online.skipped
    assert max(_rel(t.latent, offline[k]) for k, t in enumerate(online.decoded)) <= 1e-5
    if sizes == [12]:  # without the correction, windows start at the triggers: not the offline latents
        at_triggers = _feed(_decoder(), stream, sizes)
        assert [t.onset_sample for t in at_triggers.decoded] == triggers[decoded].tolist()
        assert max(_rel(t.latent, offline[k]) for k, t in enumerate(at_triggers.decoded)) > 1e-5


@pytest.mark.parametrize("polarity", [1.0, -1.0], ids=["rising", "falling"])
def test_photodiode_search_fed_in_chunks_equals_the_offline_conversion(polarity):
    """PhotodiodeOnsets alone: a photodiode that lights up or goes dark (inverted wiring) at 3-40 samples
    after each trigger, fed in uneven chunks: the offline conversion's onsets, threshold 0.3 as well."""
    from megdecode.bids import photodiode_onsets
    from megdecode.online.photodiode import PhotodiodeOnsets

    rng = np.random.default_rng(7)
    triggers = np.arange(200, 3000, 300) + rng.integers(-20, 20, 10)
    lit = triggers + rng.integers(3, 40, 10)
    signal = 0.5 + 0.01 * rng.standard_normal(3300)
    for onset in lit:
        signal[onset : onset + 150] += polarity * 2.0
    for threshold in (0.5, 0.3):
        search = PhotodiodeOnsets(SFREQ, 0.12, threshold)
        found, a = [], 0
        for size in [7, 1, 40, 3, 200] * 100:
            if a >= len(signal):
                break
            search.add(signal[a : a + size], a)
            for trigger in triggers[(triggers >= a) & (triggers < a + size)]:
                search.expect(int(trigger), None)
            found += search.resolve(a + size)
            a += size
        offline = photodiode_onsets(signal, triggers, SFREQ, 0.12, threshold, "run")
        assert [f.onset for f in found] == offline.tolist() == lit.tolist()
        assert len(search.buffer) <= search.pre + 1 + 200  # only what a later trigger can read


def test_trigger_without_a_photodiode_edge_is_a_counted_skip():
    stream, onsets, triggers, _ = _with_photodiode()
    stream[0, onsets[3] : onsets[3] + 180] -= 1.0  # that image never lit the photodiode
    stream[0, onsets[5] + 2] = np.nan  # a non-finite photodiode sample in another trial's search window
    decoder = _feed(_decoder(photodiode_channel="UADC016-2104"), stream, [12])
    assert {s.onset_sample: s.reason for s in decoder.skipped} == {
        int(triggers[3]): SKIP_DIODE,
        int(triggers[5]): SKIP_DIODE,
    }
    assert "no photodiode step within 100 ms" in decoder.skipped[0].detail
    assert "non-finite" in decoder.skipped[1].detail
    assert decoder.skip_counts[SKIP_DIODE] == 2 and len(decoder.decoded) == 7 - 2
    assert decoder.decoded[-1].onset_sample == onsets[-1]


def test_construction_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"1 of the model's 6 channels cannot be decoded \(1 absent"):
        _decoder(events=[], stream=STREAM[:-2])
    with pytest.raises(ValueError, match="sampled at 1200.0 Hz but the model's recordings were at 360.0"):
        _decoder(events=[], sfreq=1200.0)
    zero = dataclasses.replace(MODEL, params=PreprocessingParams.from_config(pre_cfg()))
    with pytest.raises(ValueError, match="phase: causal.*allow_zero_phase"):
        _decoder(events=[], model=zero)
    with pytest.raises(ValueError, match="photodiode channel 'UADC999' is not among"):
        _decoder(photodiode_channel="UADC999")
    with pytest.raises(ValueError, match="give stim_channel too"):
        _decoder(events=[], photodiode_channel="UADC016-2104")
    with pytest.raises(ValueError, match="expected \\(8, n_samples\\)"):
        _decoder().feed(np.zeros((5, 3)))


@pytest.mark.slow
def test_replay_rule_in_the_tiny_workflow(tiny_results):
    """The tiny workflow replays each subject's test runs: every image trial decoded, none skipped; with
    phase: causal, online latents equal the training job's saved predictions on the same trials."""
    import pandas as pd

    from megdecode.artifacts.online_model import read_online_model
    from megdecode.io import read_tsv
    from megdecode.online.trial_log import read_trial_log

    for subject in ("01", "02"):
        out = tiny_results / "realtime" / "attributes" / f"sub-{subject}" / "seed-0"
        summary = read_tsv(out / "summary.tsv").set_index("metric")
        value = summary["value"]
        trials = read_tsv(out / "trials.tsv", dtype={"session": str, "run": str, "image_id": str})
        events = [read_tsv(p) for p in (tiny_results / "bids" / f"sub-{subject}").rglob("*_events.tsv")]
        n_images = sum(int(e["trial_type"].isin(["exp", "test"]).sum()) for e in events)
        assert (trials["status"] == "decoded").sum() == int(value["trials_decoded"]) == n_images
        assert int(value["trials_skipped"]) == 0 and (out / "replay.png").stat().st_size > 10_000
        assert float(value["latency_ms_p50"]) > 0 and float(value["throughput_x_realtime"]) > 1
        assert int(value["n_compared_offline"]) > 0
        assert value["backbone"] == "attributes" and float(value["chance_top5"]) == round(5 / 36, 4)
        # every trial was logged as it came (the job's second log), the same rows as trials.tsv
        logged = read_trial_log(
            tiny_results / "logs" / "realtime_replay" / "attributes" / f"sub-{subject}_seed-0.trials.tsv"
        )
        key = ["session", "run", "onset_sample", "top5"]
        pd.testing.assert_frame_equal(
            logged.sort_values(key, ignore_index=True)[key], trials.sort_values(key, ignore_index=True)[key]
        )
        online = read_online_model(out / "online_model")
        assert online.subject == subject and online.onsets["photodiode_channel"] == "UADC016-2104"
        if value["phase"] == "causal":
            assert float(value["online_offline_max_rel_diff"]) <= 1e-5
            assert value["online_top5_acc_compared"] == value["offline_top5_acc_compared"]
        else:
            assert "MODEL TRAINED ON preprocessing.phase: zero" in summary.loc["phase", "note"]


def check_trigger_onsets_equal_events(results, subject: str, backbone: str = "attributes") -> None:
    """A simulated run of ``results`` streamed in 12-sample chunks, onsets from UPPT001 moved by the
    photodiode online: the decoded trials' onsets are the events.tsv samples the offline conversion
    wrote (photodiode-corrected, on the whole run), every image trial decoded."""
    from megdecode.io import read_json, read_tsv
    from megdecode.online.build import gallery_from_files, load_online_decoder
    from megdecode.online.replay import replay_run
    from megdecode.preprocessing.reader import open_raw, run_stem

    raw_path = sorted((results / "bids" / f"sub-{subject}").rglob("*_meg.fif"))[0]
    events = read_tsv(str(raw_path).replace("_meg.fif", "_events.tsv"))
    model = results / "models" / "brain" / backbone / f"sub-{subject}" / "seed-0"
    gallery = gallery_from_files(model / "predictions.npz", results / "latents" / backbone)
    raw = open_raw(raw_path, run_stem(raw_path))
    settings = OnlineSettings(
        allow_zero_phase=True, stim_channel="UPPT001",
        trigger_codes=read_json(results / "sourcedata" / "ground_truth.json")["trigger_codes"],
        photodiode_channel="UADC016-2104", photodiode_max_lag_s=0.1, photodiode_threshold=0.5,
    )  # fmt: skip
    decoder = load_online_decoder(
        model / "model.safetensors", results / "preprocessed" / f"sub-{subject}", gallery, subject,
        float(raw.info["sfreq"]), raw.ch_names, settings,
    )  # fmt: skip
    replay_run(decoder, raw, 12, pace=False)
    images = events[events["trial_type"].isin(["exp", "test"])]
    assert not decoder.skipped and len(decoder.decoded) == len(images) > 0
    assert [t.onset_sample for t in decoder.decoded] == images["sample"].tolist()


@pytest.mark.slow
def test_trigger_onsets_in_the_tiny_workflow_equal_its_photodiode_corrected_events(tiny_results):
    check_trigger_onsets_equal_events(tiny_results, "01")


def test_real_ctf_recording_fed_chunk_by_chunk():
    """The real 2 s CTF-275 recording (../shared/ctf-sample), every channel streamed in 12-sample chunks:
    the online decoder picks the 273 axial gradiometers by name and equals the offline causal chain."""
    from test_ctf_real import CTF, ONSETS

    from megdecode.preprocessing.reader import open_raw, pick_meg_channels

    if not CTF.is_dir():
        pytest.skip(f"real CTF sample not present: {CTF}")
    raw = open_raw(CTF, "ctf-sample")
    names = pick_meg_channels(raw.info, [], "ctf-sample").names
    stream = raw.get_data()  # references, UADC/UPPT channels included: the decoder picks by name
    sfreq = float(raw.info["sfreq"])
    params = PreprocessingParams.from_config(pre_cfg(phase="causal"))
    onsets = np.round(ONSETS * sfreq).astype(int)
    meg = stream[[raw.ch_names.index(n) for n in names]]
    epochs = epoch_causal(lambda a, b: meg[:, a:b], meg.shape[1], len(names), sfreq, onsets, params).data
    center, scale = np.median(epochs, axis=(0, 2)), np.ptp(epochs, axis=(0, 2)) / 4
    torch.manual_seed(0)
    cfg = brain_config(spatial_channels=8, fourier_freqs=2, hidden=8, n_blocks=1, out_channels=8)
    brain = BrainModule(cfg, torch.rand(len(names), 2), 1, params.n_times(), (4,)).eval()
    gallery = Gallery([f"img{i}" for i in range(6)], np.eye(6, 4))
    events = [Event(int(s), "exp") for s in onsets]
    model = SubjectModel(brain, 0, params, names, center, scale)
    decoder = OnlineDecoder(model, gallery, sfreq, raw.ch_names, events=events)
    _feed(decoder, stream, [12])
    apply_scaler(epochs, center, scale, params.clamp)
    with torch.no_grad():
        offline = brain(torch.from_numpy(epochs), torch.zeros(len(epochs), dtype=torch.long))["clip"].numpy()
    assert [t.onset_sample for t in decoder.decoded] == onsets.tolist() and not decoder.skipped
    assert max(_rel(t.latent, offline[k]) for k, t in enumerate(decoder.decoded)) <= 1e-5


def test_push_schedules_give_the_same_latents():
    stream, _, _ = _recording()
    base = _feed(_decoder(), stream, [12])
    for options in ({"push_lead": 1, "push_every": 1}, {"push_lead": 180}, {"push_every": 50}):
        other = _feed(_decoder(**options), stream, [12])
        for a, b in zip(base.decoded, other.decoded, strict=True):
            assert _rel(a.latent, b.latent) <= 1e-5


def test_replay_feeds_contiguous_chunks_and_paces_at_the_recording_rate():
    import time

    import mne

    from megdecode.online.replay import replay_run

    raw = mne.io.RawArray(np.zeros((2, 180)), mne.create_info(2, 360.0, "misc"), verbose="error")

    class Recorder:
        def __init__(self):
            self.calls = []

        def feed(self, chunk, first_sample=None):
            self.calls.append((first_sample, chunk.shape[1]))

        def close(self):
            pass

    fast, paced = Recorder(), Recorder()
    replay_run(fast, raw, chunk=12, pace=False, block_s=0.1)
    tic = time.perf_counter()
    stats = replay_run(paced, raw, chunk=12, pace=True, block_s=0.1)
    assert time.perf_counter() - tic >= 0.5 - 1e-3 and stats["stream_s"] == 0.5
    assert fast.calls == paced.calls and [c[0] for c in fast.calls] == list(range(0, 180, 12))


def test_causal_workflow_in_miniature_trains_and_replays_equal_to_offline(tmp_path):
    """Run jobs (phase: causal) -> subject job (scaler) -> brain-module training -> online model -> replay:
    the online latents of the large-test-set trials equal the training job's saved predictions (same
    top-5). A replay whose second run cannot be decoded (channels renamed) fails naming them, and keeps
    every trial of the first run in its trial log."""
    import mne
    import pandas as pd
    from test_preprocessing import _run_job, _stimuli, _write_run
    from test_training import FAST, SMALL, _outputs

    from megdecode import io
    from megdecode.artifacts.online_model import read_online_model, write_online_model
    from megdecode.config import section_defaults
    from megdecode.online.replay import TRIAL_COLUMNS, ReplayInputs, ReplaySettings, replay_subject
    from megdecode.online.trial_log import read_trial_log
    from megdecode.preprocessing.subject import OUTPUT_KEYS, preprocess_subject
    from megdecode.training.brain import train_brain_module

    stimuli = tmp_path / "stimuli.tsv"
    _stimuli(stimuli)
    table = pd.read_csv(stimuli, sep="\t")
    table.assign(file=table["image_id"] + ".png").to_csv(stimuli, sep="\t", index=False)  # no image files
    cfg = {"phase": "causal", "val_fraction": 0.25}
    runs = [_write_run(tmp_path / "bids", ses, seed) for ses, seed in (("01", 1), ("02", 2))]
    outs = [_run_job(tmp_path, raw, events, stimuli, cfg) for raw, events in runs]
    names = {"meg": "meg.npy", "report": "report.html", "info": "info.json"}
    pre = {k: tmp_path / "pre" / names.get(k, f"{k}.tsv") for k in OUTPUT_KEYS}
    paths = {k: [o[k] for o in outs] for k in ("e", "q", "p")}
    preprocess_subject(paths["e"], paths["q"], paths["p"], "01", pre, pre_cfg(**cfg), seed=0)
    ids = pd.read_csv(stimuli, sep="\t")["image_id"].astype(str)
    latents = tmp_path / "latents"
    io.save_npy(
        np.random.default_rng(0).standard_normal((len(ids), 6)).astype(np.float32), latents / "latents.npy"
    )
    io.write_tsv(pd.DataFrame({"image_id": ids}), latents / "index.tsv")
    model = _outputs(tmp_path / "model")
    train_brain_module({"01": tmp_path / "pre"}, latents, model, SMALL, {**FAST, "max_epochs": 2}, seed=0)
    onsets = {"stim_channel": "STI", "trigger_codes": {"exp": 1, "test": 2, "catch": 4},
              "photodiode_channel": None, "photodiode_max_lag_s": 0.1,
              "photodiode_threshold": 0.5}  # fmt: skip
    online_dir = tmp_path / "online_model"
    write_online_model(
        online_dir, model_path=model.model, preprocessed_dir=tmp_path / "pre",
        predictions_path=model.predictions["01"], latents_dir=latents, stimuli_path=stimuli, subject="01",
        backbone="test_latents", seed=0, gallery_split="test_large", onsets=onsets,
    )  # fmt: skip
    online = read_online_model(online_dir)
    assert (
        online.phase == "causal" and online.onsets == onsets and online.subject_model.params.phase == "causal"
    )
    settings = ReplaySettings.from_config({**section_defaults("realtime"), "enabled": True})

    def replay(raw_paths, out):
        inputs = ReplayInputs(
            raw_paths, [e for _, e in runs], stimuli, tmp_path / "images", online_dir,
            model.predictions["01"], pre["trials"],
        )  # fmt: skip
        return replay_subject(inputs, settings, out, out / "trial_log.tsv")

    summary = replay([r for r, _ in runs], tmp_path / "replay")
    value = summary.set_index("metric")["value"]
    assert value["phase"] == "causal" and int(value["trials_skipped"]) == 0
    assert value["backbone"] == "test_latents"
    assert int(value["trials_decoded"]) == 38  # 2 runs x (20 events - 1 catch)
    assert int(value["n_compared_offline"]) == 4  # img10, exp image of a test concept, twice per run
    assert float(value["online_offline_max_rel_diff"]) <= 1e-5
    assert value["online_top5_acc_compared"] == value["offline_top5_acc_compared"]
    n_gallery = len(online.gallery)
    assert float(value["chance_top5"]) == round(min(5, n_gallery) / n_gallery, 4)
    assert (tmp_path / "replay" / "replay.png").is_file()
    trials = read_trial_log(tmp_path / "replay" / "trials.tsv")
    logged = read_trial_log(tmp_path / "replay" / "trial_log.tsv")
    assert list(trials.columns) == list(logged.columns) == TRIAL_COLUMNS and len(logged) == len(trials) == 38
    # the gallery's trials only are scored (the test images); training images can never be right
    assert set(trials.dropna(subset=["online_top5_hit"])["image_id"]) <= set(online.gallery.image_ids)

    # run 2 with 2 of the model's channels renamed: more than max_missing_fraction (0.1) cannot be decoded
    raw = mne.io.read_raw_fif(runs[1][0], preload=True, verbose="error")
    renamed = {name: f"{name}-renamed" for name in online.subject_model.channels[:2]}
    bad = tmp_path / "bad" / runs[1][0].name
    bad.parent.mkdir()
    raw.rename_channels(renamed).save(bad, verbose="error")
    n_channels = len(online.subject_model.channels)
    with pytest.raises(
        ValueError, match=f"2 of the model's {n_channels} channels cannot be decoded"
    ) as failure:
        replay([runs[0][0], bad], tmp_path / "failed")
    assert "the 19 trials decoded or skipped before it are in" in "\n".join(failure.value.__notes__)
    kept = read_trial_log(tmp_path / "failed" / "trial_log.tsv")
    first_run = trials[trials["session"] == "01"]
    assert len(kept) == 19 and (kept["status"] == "decoded").all()
    pd.testing.assert_frame_equal(
        kept.drop(columns="latency_ms"), first_run.drop(columns="latency_ms").reset_index(drop=True)
    )
    assert not (tmp_path / "failed" / "trials.tsv").exists()  # no output that looks complete


# --- faults: missing channels, NaN in the trigger channel, the filter's settling time --------------------


def test_missing_channels_are_decoded_through_the_mask_up_to_the_stated_fraction(caplog):
    """A stream without one of the model's channels (or with it named bad) decodes with the channels
    present, as the brain module does with that channel masked; past max_missing_fraction it is refused."""
    stream, onsets, types = _recording()
    decoded = [i for i, t in enumerate(types) if t != "catch"]
    gone = MEG[2]
    keep = [i for i, name in enumerate(STREAM) if name != gone]
    mask = torch.tensor([name != gone for name in MEG])
    offline = _offline(stream, onsets[decoded], mask=mask)
    with caplog.at_level("WARNING", logger="megdecode.online.decoder"):
        absent = _feed(
            _decoder(max_missing_fraction=0.2, stream=[STREAM[i] for i in keep]), stream[keep], [12]
        )
    assert "decoding with 5 of the model's 6 channels" in caplog.text and gone in caplog.text
    named_bad = _feed(_decoder(max_missing_fraction=0.2, bad_channels=(gone,)), stream, [12])
    for online in (absent, named_bad):
        assert [t.onset_sample for t in online.decoded] == onsets[decoded].tolist() and not online.skipped
        assert max(_rel(t.latent, offline[k]) for k, t in enumerate(online.decoded)) <= 1e-5
    with pytest.raises(ValueError, match=r"more than max_missing_fraction 0.1 allows"):
        _decoder(stream=[STREAM[i] for i in keep])  # 1 of 6 > 10%
    whole = _offline(stream, onsets[decoded])
    assert max(_rel(t.latent, whole[k]) for k, t in enumerate(absent.decoded)) > 1e-4  # the mask mattered


def test_nan_in_the_trigger_channel_inside_a_pulse_makes_no_phantom_onset():
    stream, onsets, _ = _recording()
    clean = _feed(_decoder(), stream, [12])
    holed = stream.copy()
    holed[-1, onsets[1] + 2] = np.nan  # inside the 5-sample pulse
    holed[-1, onsets[4] + 4 : onsets[4] + 8] = np.nan  # across the pulse's falling edge
    decoder = _feed(_decoder(), holed, [3])
    assert [t.onset_sample for t in decoder.decoded] == [t.onset_sample for t in clean.decoded]
    assert not decoder.skipped and decoder.n_ignored == clean.n_ignored


def test_settling_samples_of_a_known_filter():
    """One pole at a: h[n] = a**n, so the tail from n on holds a**n of the absolute sum."""
    a = 0.9
    sos = np.array([[1.0, 0.0, 0.0, 1.0, -a, 0.0]])
    for tolerance in (1e-1, 1e-3):
        assert settling_samples(sos, tolerance, 10_000) == int(np.ceil(np.log(tolerance) / np.log(a)))
    assert settling_samples(sos, 1e-3, 20) == 20  # capped


def test_trials_inside_the_filters_settling_time_after_nan_are_flagged():
    """50 ms of NaN: trials touching it (plus settle_s) are skipped; later trials inside the causal
    filter's settling time are decoded and flagged; after it they are not flagged, and they equal the
    clean run's more closely than the flagged ones."""
    from megdecode.preprocessing.causal import causal_sos

    stream, onsets, types = _recording(seconds=40.0)
    settle = settling_samples(causal_sos(CAUSAL, SFREQ), 1e-3, int(120 * SFREQ))
    assert 13.5 * SFREQ < settle < 14.5 * SFREQ  # 0.1 Hz high-pass: ~14 s
    clean = {t.onset_sample: t for t in _feed(_decoder(), stream, [12]).decoded}
    fault = int(onsets[2]) + 200
    holed = stream.copy()
    holed[1:-1, fault : fault + int(0.05 * SFREQ)] = np.nan
    decoder = _feed(_decoder(), holed, [12])
    window = decoder.window
    skipped = {s.onset_sample for s in decoder.skipped}
    flagged = {t.onset_sample: t for t in decoder.decoded if t.settling}
    unflagged = {t.onset_sample: t for t in decoder.decoded if not t.settling}
    fault_end = fault + int(0.05 * SFREQ)
    for onset in clean:
        start = onset + min(window.t0, window.b0)
        if onset + window.t1 < fault:
            assert onset in unflagged and np.array_equal(unflagged[onset].latent, clean[onset].latent)
        elif start < fault_end + decoder.settle:
            assert onset in skipped
        elif start < fault_end + settle:
            assert flagged[onset].settling == SKIP_NAN
        else:
            assert onset in unflagged
    late = [o for o in unflagged if o > fault]
    assert flagged and late
    worst_late = max(_rel(unflagged[o].latent, clean[o].latent) for o in late)
    first_flagged = _rel(flagged[min(flagged)].latent, clean[min(flagged)].latent)
    assert worst_late < first_flagged


def test_the_decoder_sets_its_torch_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _decoder()
        assert torch.get_num_threads() == 1  # the default setting
        torch.set_num_threads(2)
        _decoder(torch_threads=None)
        assert torch.get_num_threads() == 2  # left alone
    finally:
        torch.set_num_threads(before)


def test_replay_backbone_is_the_first_of_training_backbones():
    """realtime.backbone null: the first of training.backbones as listed there (the schema's words), not
    the first in the backbones section."""
    from test_plan import config

    from megdecode.plan import make_plan

    both = {"backbones": ["attributes", "hog"], "seeds": [0]}
    plan = make_plan(config(training=both, realtime={"enabled": True}))
    assert plan.brain_backbones == ["hog", "attributes"]  # the backbones section's order
    assert plan.realtime == ("attributes", 0)
    every = make_plan(config(training={"backbones": None, "seeds": [0]}, realtime={"enabled": True}))
    assert every.realtime == ("hog", 0)  # null: every backbone, in the backbones section's order
