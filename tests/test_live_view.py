"""The live view (megdecode.online.live_view): served on 127.0.0.1, read by urllib and by a real headless
browser (Debian's chromium), inside a private network namespace with only loopback up (tests/netns.py).

The browser test skips when chromium is not installed (.ci/run installs it); its screenshot is kept at
``$MEGDECODE_TEST_ARTIFACTS/live_view.png`` (default: ``<temp dir>/megdecode-test-artifacts``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_online import STREAM, _with_photodiode
from test_online_cli import write_test_online_model

from megdecode.online.live_view import LiveView

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(
    os.environ.get("MEGDECODE_TEST_ARTIFACTS", Path(tempfile.gettempdir()) / "megdecode-test-artifacts")
)


def _online(tmp_path):
    from megdecode.artifacts.online_model import read_online_model

    return read_online_model(
        write_test_online_model(tmp_path / "online_model", images_root=tmp_path / "images")
    )


def _paced_session(online, view, tmp_path, pace_s: float = 0.002):
    """Decode tests/test_online.py's photodiode recording chunk by chunk (a short sleep per chunk, so that
    trials reach the page while it is open) through the command's Session hook into ``view``; returns the
    thread (it publishes ``end`` when done) and the Session."""
    from megdecode.online.cli import LIVE_COLUMNS, Session
    from megdecode.online.decoder import OnlineDecoder
    from megdecode.online.replay import ListedEvents
    from megdecode.online.trial_log import TrialLog

    stream, onsets, _, _ = _with_photodiode()
    trial_log = TrialLog(tmp_path / "trials.tsv", LIVE_COLUMNS)
    seen = pd.DataFrame({"sample": onsets, "image_id": [f"img{k}" for k in range(len(onsets))]})
    session = Session(online, trial_log, 360.0, listed=ListedEvents(seen, 360.0), view=view)
    decoder = OnlineDecoder(
        online.subject_model, online.gallery, 360.0, STREAM, online.settings(), on_record=session
    )

    def run():
        with trial_log:
            for a in range(0, stream.shape[1], 12):
                decoder.feed(stream[:, a : a + 12], first_sample=a)
                time.sleep(pace_s)
            decoder.close()
        view.publish({"status": "ended"}, kind="end")

    return threading.Thread(target=run, daemon=True), session


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_live_view_refuses_any_address_but_loopback(tmp_path):
    online = _online(tmp_path)
    with pytest.raises(ValueError, match="loopback address only, not 0.0.0.0"):
        LiveView(online, tmp_path / "images", host="0.0.0.0")


@pytest.mark.netns
def test_live_view_serves_the_page_the_trials_and_gallery_images_only(tmp_path):
    online = _online(tmp_path)
    view = LiveView(online, tmp_path / "images").start()
    try:
        assert view.url.startswith("http://127.0.0.1:")
        thread, session = _paced_session(online, view, tmp_path, pace_s=0.0)
        thread.start()
        with urllib.request.urlopen(view.url + "events", timeout=30) as response:  # ends with "end"
            text = response.read().decode()
        thread.join(timeout=30)
        events = re.findall(r"event: (\w+)\ndata: (.*)\n\n", text)
        assert [e for e, _ in events] == ["meta"] + ["trial"] * 7 + ["end"]
        meta = json.loads(events[0][1])
        assert meta["chance_top5"] == 0.25 and meta["phase"] == "causal" and len(meta["images"]) == 20
        trials = [json.loads(d) for e, d in events if e == "trial"]
        assert [t["top5"] for t in trials] == [",".join(t) for t in _top5s(tmp_path / "trials.tsv")]
        status, page = _get(view.url)
        assert status == 200 and b'new EventSource("/events")' in page
        state = json.loads(_get(view.url + "state.json")[1])
        assert len(state["trials"]) == 7 and state["end"] == {"status": "ended"}
        status, png = _get(view.url + "image/img3")
        assert status == 200 and png == (tmp_path / "images" / "img3.png").read_bytes()
        assert _get(view.url + "image/..%2Fonline_model-model.safetensors")[0] == 404
        assert _get(view.url + "image/not-in-gallery")[0] == 404
        assert _get(view.url + "elsewhere")[0] == 404
    finally:
        view.stop()


def _top5s(path: Path) -> list[list[str]]:
    from megdecode.online.trial_log import read_trial_log

    return [str(t).split(",") for t in read_trial_log(path)["top5"]]


def _chromium(*args: str, timeout: float = 60.0) -> str:
    """Run headless chromium (fresh profile) with ``args``; its stdout. The whole process group is killed
    when it outlives ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.Popen(
            [shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"chromium did not finish within {timeout:g} s")
        assert proc.returncode == 0, proc.returncode
        return out


@pytest.mark.netns
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)"
)
def test_live_view_in_headless_chromium_shows_each_trial_as_it_arrives(tmp_path):
    """The page, open while a session decodes, ends up showing every trial with its seen image, top-5
    and hit or miss, the running top-5 against chance and the latency histogram; a screenshot is kept."""
    online = _online(tmp_path)
    view = LiveView(online, tmp_path / "images").start()
    try:
        thread, session = _paced_session(online, view, tmp_path, pace_s=0.003)  # ~1 s of decoding
        thread.start()  # the page below opens while trials arrive; it closes its stream at "end"
        dom = _chromium("--virtual-time-budget=10000", "--dump-dom", view.url)
        thread.join(timeout=30)
        dom = dom[: dom.index("<script>")]  # the rendered page, not the script's text
        rows = dom.split('<div class="trial" data-status="decoded">')[1:]
        assert len(rows) == len(session.latencies_ms) == len(session.hits) == 7
        hits = sum('<span class="hit">HIT</span>' in row for row in rows)
        misses = sum('<span class="miss">MISS</span>' in row for row in rows)
        assert hits == sum(session.hits) and hits + misses == 7
        assert f'<span id="acc">{np.mean(session.hits):.3f}</span>' in dom
        assert '<span id="chance">0.250</span>' in dom and '<span id="ngallery">7</span>' in dom
        assert "sub-01, test_latents, phase causal" in dom and "(session ended)" in dom
        top5s = _top5s(tmp_path / "trials.tsv")[::-1]  # newest first on the page
        for row, top5 in zip(rows, top5s, strict=True):
            shown = re.findall(r'<img src="/image/(\w+)"', row)
            assert len(shown) == 6 and shown[1:] == top5  # the seen image, then the top-5 in rank order
        assert len(re.findall(r'<div style="height: \d+(\.\d+)?px;">', dom)) == 20  # the histogram's bars
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "live_view.png"
        shot.unlink(missing_ok=True)
        _chromium("--virtual-time-budget=10000", "--window-size=1100,900", f"--screenshot={shot}", view.url)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    finally:
        view.stop()


@pytest.mark.netns
def test_online_command_serves_the_live_view_on_loopback(tmp_path, capsys, monkeypatch):
    """`megdecode online --view 0`: the view comes up on 127.0.0.1 (a free port), gets every trial and the
    end of the session, and is shut down with it."""
    from test_online_cli import write_recording

    from megdecode.online.cli import main

    model = write_test_online_model(tmp_path / "online_model", images_root=tmp_path / "images")
    stream, _, _, _ = _with_photodiode()
    write_recording(tmp_path / "run_raw.fif", stream)
    published = []
    real_publish = LiveView.publish

    def spy(self, row, kind="trial"):
        published.append(kind)
        real_publish(self, row, kind)

    monkeypatch.setattr(LiveView, "publish", spy)
    argv = ["online", "--model", str(model), "--replay", str(tmp_path / "run_raw.fif"),
            "--out", str(tmp_path / "out"), "--view", "0", "--images", str(tmp_path / "images")]  # fmt: skip
    code = main(argv)
    url = re.search(r"live view: (http://127\.0\.0\.1:\d+/)", capsys.readouterr().out)
    assert code == 0 and url is not None and published == ["trial"] * 7 + ["end"]
    with pytest.raises(urllib.error.URLError):  # stopped with the session
        urllib.request.urlopen(url.group(1), timeout=5)
