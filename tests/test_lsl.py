"""Lab Streaming Layer input and output (megdecode.online.lsl), over loopback in a private namespace.

The ``netns`` tests run in a child pytest inside ``unshare --net`` with only ``lo`` up (tests/netns.py)
and liblsl configured to resolve on this machine only (``lsl_api.cfg`` through ``LSLAPICFG``: IPv6 off,
``ResolveScope = machine``, ``KnownPeers = {127.0.0.1}``). Nothing here opens a stream in the session's
own namespace. Every wait is bounded (connect and idle timeouts, the child's hard timeout).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from netns import inside, interfaces

from megdecode.online.lsl import (
    Gap,
    LSLInput,
    LSLStreamError,
    find_gaps,
    lsl_chunks,
    publish_recording,
    write_lsl_api_config,
)

CTF = SHARED / "ctf-sample" / "testdata_ctf_short_discontinuous.ds"
SFREQ = 1200.0
N_TIMES = 1207  # 100 chunks of 12 and a short one of 7
# the replay waits for the consumer, whose connection takes ~1.3 s more after it is counted: the inlet
# must hold that much (and more on a loaded machine) for no sample to be dropped before the first read
BUFSIZE = 4.0
HAS_MNE_LSL = importlib.util.find_spec("mne_lsl") is not None


# --- without a stream: gap arithmetic, the config file, the missing-package error -----------------------


def test_find_gaps_from_timestamps():
    period = 1 / SFREQ
    ts = 10.0 + period * np.arange(12)
    assert find_gaps(ts, None, SFREQ) == []
    assert find_gaps(ts, 10.0 - period, SFREQ) == []  # the chunk follows the previous one
    assert find_gaps(ts, 10.0 - 13 * period, SFREQ) == [(0, 12)]  # a dropped chunk of 12 before it
    holed = np.concatenate([ts[:5], ts[5:] + 3 * period])
    assert find_gaps(holed, None, SFREQ) == [(5, 3)]
    assert find_gaps(holed, ts[0] - period, SFREQ) == [(5, 3)]
    # arrival jitter below the allowed jitter is no gap; a whole missing chunk still is
    jittery = ts + np.r_[np.zeros(6), np.full(6, 1.4 * period)]
    assert find_gaps(jittery, None, SFREQ) == [(6, 1)]
    assert find_gaps(jittery, None, SFREQ, jitter=0.002) == []
    assert find_gaps(ts + np.r_[np.zeros(6), np.full(6, 12 * period)], None, SFREQ, jitter=0.002) == [(6, 12)]


def test_lsl_api_config_keeps_discovery_on_the_machine(tmp_path):
    cfg = write_lsl_api_config(
        tmp_path / "lsl_api.cfg", log_file=tmp_path / "liblsl.log", tuning={"TimeProbeInterval": 0.005}
    )
    sections: dict[str, dict[str, str]] = {}
    section = ""
    for line in cfg.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            sections.setdefault(section, {})[key] = value
    assert sections["ports"] == {"IPv6": "disable"}
    assert sections["multicast"] == {"ResolveScope": "machine"}
    assert sections["lab"] == {"KnownPeers": "{127.0.0.1}"}
    assert sections["log"]["file"] == str(tmp_path / "liblsl.log")
    assert sections["tuning"] == {"TimeProbeInterval": "0.005"}
    with pytest.raises(ValueError, match="not one of liblsl's scopes"):
        write_lsl_api_config(tmp_path / "x.cfg", resolve_scope="planet")


def test_missing_mne_lsl_is_a_clear_error(monkeypatch):
    for name in [m for m in sys.modules if m == "mne_lsl" or m.startswith("mne_lsl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mne_lsl", None)  # import mne_lsl raises ImportError
    with pytest.raises(ImportError, match=r"megdecode\[realtime\]"):
        LSLInput("anything").connect()


def test_bad_arguments_are_refused_before_any_stream_opens():
    with pytest.raises(ValueError, match="timeout must be > 0"):
        LSLInput("x", timeout=0)
    with pytest.raises(ValueError, match="more than once"):
        LSLInput("x", ch_names=["A", "A"])


# --- over loopback, in the namespace ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lsl_config(tmp_path_factory) -> Path | None:
    """liblsl's machine-only config, set before any stream opens (None in the parent: no body runs there)."""
    if not inside():
        return None
    if not HAS_MNE_LSL:
        pytest.skip("mne-lsl is not installed (extra 'realtime')")
    folder = tmp_path_factory.mktemp("lsl")
    # loopback needs no spacing between the clock-offset probes a connection sends (64 ms by default):
    # 0.5 s less per connection
    cfg = write_lsl_api_config(
        folder / "lsl_api.cfg", log_file=folder / "liblsl.log", tuning={"TimeProbeInterval": 0.005}
    )
    os.environ["LSLAPICFG"] = str(cfg)
    return cfg


@pytest.fixture(scope="module")
def sim_fif(tmp_path_factory) -> Path:
    """A small raw FIF: 6 magnetometers, a trigger channel with 3 triggers, a sample-counter channel."""
    import mne

    rng = np.random.default_rng(7)
    names = [f"MEG{i:03d}" for i in range(6)] + ["UPPT001", "COUNTER"]
    info = mne.create_info(names, SFREQ, ["mag"] * 6 + ["stim", "misc"])
    data = np.zeros((len(names), N_TIMES))
    data[:6] = rng.standard_normal((6, N_TIMES)) * 1e-12
    for onset, code in [(200, 3), (600, 7), (1000, 11)]:
        data[6, onset : onset + 6] = code
    data[7] = np.arange(N_TIMES)
    path = tmp_path_factory.mktemp("sim") / "sim_raw.fif"
    mne.io.RawArray(data, info, verbose="error").save(path, verbose="error")
    return path


def _collect(stream_name: str, **kwargs) -> tuple[np.ndarray, list[int], list[int], LSLInput]:
    chunks, firsts, sizes = [], [], []
    with LSLInput(stream_name, **kwargs) as source:
        for chunk, first in source:
            chunks.append(chunk)
            firsts.append(first)
            sizes.append(chunk.shape[1])
    return np.concatenate(chunks, axis=1), firsts, sizes, source


@pytest.mark.netns
def test_namespace_has_only_loopback_and_no_route_out():
    assert interfaces() == ["lo"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OSError) as err:
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: no route exists, so nothing is sent
    assert err.value.errno is not None


@pytest.mark.netns
def test_published_fif_arrives_whole_and_in_order(lsl_config, sim_fif):
    import mne

    expected = mne.io.read_raw_fif(sim_fif, preload=True, verbose="error")
    order = ["COUNTER", "MEG003", "UPPT001", "MEG000", "MEG005"]  # a subset, in the consumer's order
    start = time.monotonic()
    with publish_recording(sim_fif, "megdecode-test-fif", chunk_size=12) as player:
        data, firsts, sizes, source = _collect(
            "megdecode-test-fif", ch_names=order, sfreq=SFREQ, timeout=0.5, connect_timeout=5, bufsize=BUFSIZE
        )
        assert not player.running  # it ended by itself at the end of the recording
    elapsed = time.monotonic() - start
    assert source.ch_names == order and source.sfreq == SFREQ
    # sample counters: from 0, contiguous, no gap read from the timestamps
    assert firsts[0] == 0 and firsts == list(np.cumsum([0, *sizes[:-1]]))
    assert data.shape == (len(order), N_TIMES) and source.gaps == [] and source.n_received == N_TIMES
    np.testing.assert_array_equal(data, expected.get_data(picks=order))
    np.testing.assert_array_equal(data[0], np.arange(N_TIMES))
    assert elapsed < 15, elapsed  # ~1 s of recording, paced, then 0.5 s without samples
    # liblsl read the machine-only config (its log names the file)
    assert f"Configuration loaded from {lsl_config}" in (lsl_config.parent / "liblsl.log").read_text()


@pytest.mark.netns
@pytest.mark.skipif(not CTF.is_dir(), reason=f"real CTF sample not present: {CTF}")
def test_published_ctf_recording_arrives_whole(lsl_config):
    import mne

    from megdecode.preprocessing.reader import open_raw, pick_meg_channels

    raw = open_raw(CTF, "ctf-sample")
    wanted = [*pick_meg_channels(raw.info, [], "ctf-sample").names, "UPPT001"]
    assert len(wanted) == 274
    with publish_recording(CTF, "megdecode-test-ctf", chunk_size=12):
        data, firsts, sizes, source = _collect(
            "megdecode-test-ctf",
            ch_names=wanted,
            sfreq=1200.0,
            max_samples=raw.n_times,
            connect_timeout=5,
            bufsize=BUFSIZE,
        )
    assert firsts[0] == 0 and firsts == list(np.cumsum([0, *sizes[:-1]])) and source.gaps == []
    expected = mne.io.read_raw_ctf(CTF, preload=True, verbose="error").get_data(picks=wanted)
    assert data.shape == expected.shape == (274, 2402)
    np.testing.assert_allclose(data, expected, rtol=1e-6, atol=0)


@pytest.mark.netns
def test_stream_without_the_models_channels_is_a_clear_error(lsl_config, sim_fif):
    with (
        publish_recording(sim_fif, "megdecode-test-channels", wait_for_consumer=None),
        pytest.raises(LSLStreamError, match=r"lacks 1 of the 3 channels.*MEG999"),
    ):
        next(lsl_chunks("megdecode-test-channels", ch_names=["MEG000", "MEG999", "MEG001"], timeout=1))


@pytest.mark.netns
def test_stream_at_another_rate_is_a_clear_error(lsl_config, sim_fif):
    with (
        publish_recording(sim_fif, "megdecode-test-rate", wait_for_consumer=None),
        pytest.raises(LSLStreamError, match="sampled at 1200 Hz, the consumer expects 600 Hz"),
    ):
        next(lsl_chunks("megdecode-test-rate", sfreq=600.0, timeout=1))


@pytest.mark.netns
def test_absent_stream_is_a_clear_error(lsl_config):
    start = time.monotonic()
    with pytest.raises(LSLStreamError, match="no single stream of that name found within 0.5 s"):
        LSLInput("megdecode-test-nobody", connect_timeout=0.5).connect()
    # bounded: liblsl's resolver gives up after 0.5 s, and now and then after 5.5 s
    assert time.monotonic() - start < 10


@pytest.mark.netns
def test_samples_missing_from_the_stream_advance_the_counter(lsl_config):
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

    sfreq, n_channels = 100.0, 3
    info = StreamInfo("megdecode-test-gap", "MEG", n_channels, sfreq, "float32", "megdecode-test-gap")
    info.set_channel_names(["A", "B", "C"])
    outlet = StreamOutlet(info, chunk_size=10)
    block = np.arange(30, dtype=np.float32).reshape(10, n_channels)
    source = LSLInput("megdecode-test-gap", timeout=0.5, connect_timeout=5)
    try:
        source.connect()
        assert outlet.wait_for_consumers(5)
        t0 = local_clock()
        # samples 0-9, then 10-14 never sent, then 15-24 (a chunk's timestamp is its last sample's)
        outlet.push_chunk(block, timestamp=t0 + 9 / sfreq)
        outlet.push_chunk(block + 100, timestamp=t0 + 24 / sfreq)
        received = list(source)
    finally:
        source.close()
        del outlet
    placed = np.full((n_channels, 25), np.nan)
    for chunk, first in received:
        placed[:, first : first + chunk.shape[1]] = chunk
    np.testing.assert_array_equal(placed[:, :10], block.T)
    assert np.isnan(placed[:, 10:15]).all()  # nothing was placed where the stream has no samples
    np.testing.assert_array_equal(placed[:, 15:], block.T + 100)
    assert source.gaps == [Gap(first_sample=15, missing=5)] and source.n_received == 20


@pytest.mark.netns
def test_lsl_replay_decodes_the_trials_of_the_in_process_replay(lsl_config, tmp_path):
    """A recording streamed over LSL and decoded online gives the in-process replay's trials."""
    import mne
    from test_online import CAUSAL, MEG, STREAM, _decoder, _feed, _recording

    rows, onsets, types = _recording(seconds=3.4)  # 2 onsets: exp, test
    sfreq = CAUSAL.raw_sfreq
    info = mne.create_info(STREAM, sfreq, ["misc", *["mag"] * len(MEG), "stim"])
    path = tmp_path / "online_raw.fif"
    mne.io.RawArray(rows, info, verbose="error").save(path, verbose="error")
    recorded = mne.io.read_raw_fif(path, preload=True, verbose="error").get_data()  # float32 in the file

    def decoder(stream_channels, rate):
        return _decoder(stream=stream_channels, sfreq=rate)

    in_process = _feed(decoder(STREAM, sfreq), recorded, [recorded.shape[1]])  # the whole run at once
    with publish_recording(path, "megdecode-test-online", chunk_size=12):
        with LSLInput(
            "megdecode-test-online", sfreq=sfreq, max_samples=recorded.shape[1], bufsize=BUFSIZE
        ) as src:
            online = decoder(src.ch_names, src.sfreq)  # built from what the stream announces
            for chunk, first in src:
                online.feed(chunk, first_sample=first)
        online.close()
    assert src.gaps == [] and src.n_received == recorded.shape[1]
    assert not online.skipped and not in_process.skipped
    expected_onsets = [int(s) for s, t in zip(onsets, types, strict=True) if t != "catch"]
    assert len(expected_onsets) == 2
    assert [t.onset_sample for t in in_process.decoded] == expected_onsets
    assert [t.onset_sample for t in online.decoded] == expected_onsets
    for a, b in zip(online.decoded, in_process.decoded, strict=True):
        assert a.trial_type == b.trial_type and a.top5_ids == b.top5_ids
        assert np.linalg.norm(a.latent - b.latent) <= 1e-5 * np.linalg.norm(b.latent)


@pytest.mark.skipif(not HAS_MNE_LSL, reason="mne-lsl is not installed (extra 'realtime')")
def test_the_mne_lsl_api_this_module_uses_is_there():
    """megdecode.online.lsl uses mne-lsl's public API only; this names every class, method, property and
    argument it relies on, so that a version where one moved fails here, loudly, before any stream opens."""
    import inspect

    from mne_lsl import __version__
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock
    from mne_lsl.stream import StreamLSL
    from packaging.requirements import Requirement

    from megdecode.online.lsl import REQUIREMENT

    assert Requirement(REQUIREMENT).specifier.contains(__version__), (__version__, REQUIREMENT)
    arguments = {
        StreamInfo.__init__: ["name", "stype", "n_channels", "sfreq", "dtype", "source_id"],
        StreamInfo.set_channel_info: ["info"],
        StreamOutlet.__init__: ["sinfo", "chunk_size"],
        StreamOutlet.push_chunk: ["x", "timestamp"],
        StreamOutlet.wait_for_consumers: ["timeout"],
        StreamLSL.__init__: ["bufsize", "name", "source_id"],
        StreamLSL.connect: ["acquisition_delay", "timeout"],
        StreamLSL.get_data: ["winsize", "picks", "exclude"],
    }
    for function, names in arguments.items():
        missing = [n for n in names if n not in inspect.signature(function).parameters]
        assert not missing, f"mne-lsl {__version__}: {function.__qualname__} lacks arguments {missing}"
    for name in ("connected", "n_new_samples", "n_buffer", "info"):
        assert isinstance(inspect.getattr_static(StreamLSL, name), property), f"StreamLSL.{name}"
    for name in ("acquire", "disconnect"):
        assert callable(getattr(StreamLSL, name)), f"StreamLSL.{name}"
    assert isinstance(local_clock(), float)


def _online_command(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "megdecode.online.cli", "online", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.netns
def test_online_command_over_lsl_ends_at_its_duration_and_says_when_the_source_is_lost(lsl_config, tmp_path):
    """`megdecode online --lsl NAME`: a whole recording streamed over LSL gives the trials the in-process
    decoder gives (exit 0 at --duration); the same stream killed mid-session gives "source lost" with the
    last sample's time and the count decoded, exit 3, and trials.tsv keeps every trial decoded before."""
    from test_online import SFREQ as RATE
    from test_online import _decoder, _feed, _with_photodiode
    from test_online_cli import write_recording, write_test_online_model

    model = write_test_online_model(tmp_path / "online_model")
    stream, _, _, _ = _with_photodiode(seconds=5.0)
    recorded = write_recording(tmp_path / "run_raw.fif", stream)
    n = recorded.shape[1]
    expected = _feed(_decoder(photodiode_channel="UADC016-2104"), recorded, [12]).decoded
    common = ["--model", str(model), "--lsl-config", str(lsl_config), "--bufsize", str(BUFSIZE)]

    with publish_recording(tmp_path / "run_raw.fif", "megdecode-test-cli", wait_for_consumer=60) as player:
        proc = _online_command(*common, "--lsl", "megdecode-test-cli", "--out", str(tmp_path / "whole"),
                               "--duration", str(n / RATE))  # fmt: skip
        out, err = proc.communicate(timeout=90)
        assert not player.running
    assert proc.returncode == 0, err
    whole = pd.read_csv(tmp_path / "whole" / "trials.tsv", sep="\t")
    assert whole["onset_sample"].tolist() == [t.onset_sample for t in expected] and len(expected) == 3
    assert whole["top5"].tolist() == [",".join(t.top5_ids) for t in expected]
    assert json.loads((tmp_path / "whole" / "session.json").read_text())["status"] == "ended"

    cut = int(0.7 * n)
    with publish_recording(tmp_path / "run_raw.fif", "megdecode-test-lost", wait_for_consumer=60) as player:
        proc = _online_command(*common, "--lsl", "megdecode-test-lost", "--out", str(tmp_path / "lost"),
                               "--timeout", "1")  # fmt: skip
        deadline = time.monotonic() + 60
        while player.n_pushed < cut and time.monotonic() < deadline:
            time.sleep(0.01)
        player.stop()  # the source dies mid-session
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    session = json.loads((tmp_path / "lost" / "session.json").read_text())
    received = session["samples_received"]
    assert session["status"] == "source lost" and cut <= received < n
    before = [t for t in expected if t.last_sample < received]
    assert 0 < len(before) < len(expected)
    lost = pd.read_csv(tmp_path / "lost" / "trials.tsv", sep="\t")
    decoded = lost[lost["status"] == "decoded"]
    assert decoded["onset_sample"].tolist() == [t.onset_sample for t in before]
    assert decoded["top5"].tolist() == [",".join(t.top5_ids) for t in before]
    message = f"last sample {(received - 1) / RATE:.3f} s into the session (sample {received - 1}); "
    assert "source lost: LSL stream 'megdecode-test-lost': no sample for 1 s; " in err and message in err
    assert f"{len(before)} trials decoded" in err
