"""A live view of an online session in the browser, served on 127.0.0.1 only, with the standard library.

:class:`LiveView` runs a ``ThreadingHTTPServer`` on a background thread bound to the loopback address:

- ``/``: one page (HTML, CSS and JavaScript inline, nothing fetched from elsewhere);
- ``/events``: server-sent events: a ``meta`` event (subject, backbone, phase, gallery size, top-5
  chance), then every trial so far and each new one as it is published (``trial``), and ``end``;
- ``/image/<image id>``: a gallery image's file (from the online model's list, under the stimulus folder
  given), 404 for anything else;
- ``/state.json``: the same data as one JSON document.

The page shows per trial the seen image (when known), the top-5 retrieved (the seen one framed), hit or
miss, and above them the running top-5 accuracy against chance and a histogram of the latencies, updated
as trials arrive.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
KEEPALIVE_S = 1.0  # how often an idle event stream checks whether the view stopped

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>megdecode live</title>
<style>
body { font-family: sans-serif; margin: 1em; background: #fafafa; }
#header { display: flex; gap: 2em; align-items: flex-end; }
#score { font-size: 1.4em; }
.trial { display: flex; align-items: center; gap: 6px; padding: 4px; border-bottom: 1px solid #ddd; }
.trial .info { width: 14em; font-size: 0.85em; }
#columns span { display: inline-block; width: 70px; text-align: center; font-size: 0.8em; color: #555; }
#columns .info { width: 14em; text-align: left; }
.trial img, .trial .noimg { width: 64px; height: 64px; border: 3px solid transparent; }
.trial .noimg { display: inline-flex; align-items: center; justify-content: center; font-size: 9px;
  background: #eee; overflow: hidden; }
.trial .seen { border-color: #333; }
.trial .match { border-color: #2a2; }
.hit { color: #2a2; font-weight: bold; } .miss { color: #c22; font-weight: bold; }
.unknown { color: #888; } .skipped { color: #888; font-style: italic; }
#bars { display: flex; align-items: flex-end; height: 80px; gap: 1px; border-bottom: 1px solid #333; }
#bars div { width: 10px; background: #47c; }
</style></head>
<body>
<div id="header">
  <div><h2 id="title">megdecode live</h2><div id="status">waiting for trials</div></div>
  <div id="score">running top-5: <span id="acc">n/a</span> (chance <span id="chance">n/a</span>,
    <span id="ngallery">0</span> gallery trials)</div>
  <div><div id="bars"></div><div>latency histogram (ms): <span id="latrange">n/a</span></div></div>
</div>
<div id="columns" class="trial"><span class="info">newest trial first</span><span>seen</span>
  <span>top 1</span><span>top 2</span><span>top 3</span><span>top 4</span><span>top 5</span></div>
<div id="trials"></div>
<script>
const state = {hits: 0, ngallery: 0, latencies: [], images: new Set()};
function tile(id, cls) {
  if (id && state.images.has(id)) {
    const img = document.createElement("img");
    img.src = "/image/" + encodeURIComponent(id); img.alt = id; img.title = id; img.className = cls;
    return img;
  }
  const div = document.createElement("div");
  div.className = "noimg " + cls; div.textContent = id || "not known"; return div;
}
function histogram() {
  const lat = state.latencies, bars = document.getElementById("bars");
  bars.innerHTML = "";
  if (!lat.length) return;
  const lo = Math.min(...lat), hi = Math.max(...lat), n = 20, width = (hi - lo) / n || 1;
  const counts = new Array(n).fill(0);
  for (const v of lat) counts[Math.min(n - 1, Math.floor((v - lo) / width))] += 1;
  const top = Math.max(...counts);
  for (const c of counts) {
    const bar = document.createElement("div");
    bar.style.height = (80 * c / top) + "px";
    bars.appendChild(bar);
  }
  document.getElementById("latrange").textContent =
    lo.toFixed(2) + " to " + hi.toFixed(2) + " (" + lat.length + " trials)";
}
function addTrial(t) {
  const row = document.createElement("div");
  row.className = "trial"; row.dataset.status = t.status;
  const info = document.createElement("div"); info.className = "info";
  let verdict = "";
  if (t.status === "skipped") {
    verdict = '<span class="skipped">skipped: ' + t.skip_reason + "</span>";
  } else if (t.top5_hit === null || t.top5_hit === undefined || Number.isNaN(t.top5_hit)) {
    verdict = '<span class="unknown">seen image not in the gallery</span>';
  } else {
    state.ngallery += 1; state.hits += t.top5_hit;
    verdict = t.top5_hit ? '<span class="hit">HIT</span>' : '<span class="miss">MISS</span>';
  }
  if (t.status === "decoded") state.latencies.push(t.latency_ms);
  info.innerHTML = "t = " + Number(t.onset_s).toFixed(2) + " s, " + (t.trial_type || "?") + "<br>" + verdict +
    (t.latency_ms != null ? "<br>" + Number(t.latency_ms).toFixed(2) + " ms" : "") +
    (t.settling ? "<br>filter settling after " + t.settling : "");
  row.appendChild(info);
  row.appendChild(tile(t.image_id, "seen"));
  for (const id of (t.top5 ? t.top5.split(",") : [])) {
    row.appendChild(tile(id, id === t.image_id ? "match" : ""));
  }
  const list = document.getElementById("trials");
  list.insertBefore(row, list.firstChild);
  document.getElementById("ngallery").textContent = state.ngallery;
  document.getElementById("acc").textContent =
    state.ngallery ? (state.hits / state.ngallery).toFixed(3) : "n/a";
  document.getElementById("status").textContent = "trials: " + list.children.length;
  histogram();
}
const source = new EventSource("/events");
source.addEventListener("meta", (e) => {
  const m = JSON.parse(e.data);
  state.images = new Set(m.images);
  document.getElementById("title").textContent =
    "sub-" + m.subject + ", " + m.backbone + ", phase " + m.phase;
  document.getElementById("chance").textContent = m.chance_top5.toFixed(3);
});
source.addEventListener("trial", (e) => addTrial(JSON.parse(e.data)));
source.addEventListener("end", (e) => {
  document.getElementById("status").textContent += " (session " + JSON.parse(e.data).status + ")";
  source.close();
});
</script>
</body></html>
"""


def _json(value: Any) -> str:
    """JSON with NaN as null (browsers reject NaN)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value))


class LiveView:
    """The live view of one session (see the module docstring): :meth:`publish` each trial's row."""

    def __init__(self, online: Any, images_root: Path | str | None, port: int = 0, host: str = HOST) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the live view serves the loopback address only, not {host}")
        n_gallery = len(online.gallery)
        self.images_root = None if images_root is None else Path(images_root).resolve()
        self.files = {
            image_id: file for image_id, file in online.images.items() if self._file(file) is not None
        }
        self.meta = {
            "subject": online.subject,
            "backbone": online.backbone,
            "phase": online.phase,
            "gallery_size": n_gallery,
            "chance_top5": min(5, n_gallery) / n_gallery,
            "images": sorted(self.files),
        }
        self.events: list[tuple[str, str]] = []  # (event name, JSON data)
        self.changed = threading.Condition()
        self.stopping = False
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="live-view", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def _file(self, relative: str) -> Path | None:
        """The image file ``relative`` under the stimulus folder, when it is there (and inside it)."""
        if self.images_root is None or not relative:
            return None
        path = (self.images_root / relative).resolve()
        return path if path.is_file() and path.is_relative_to(self.images_root) else None

    def start(self) -> LiveView:
        self._thread.start()
        log.info("live view at %s", self.url)
        return self

    def publish(self, row: dict[str, Any], kind: str = "trial") -> None:
        """Send ``row`` (a ``trials.tsv`` row, or the session record for ``kind="end"``) to every page."""
        with self.changed:
            self.events.append((kind, _json(row)))
            self.changed.notify_all()

    def stop(self) -> None:
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def state(self) -> dict[str, Any]:
        with self.changed:
            events = list(self.events)
        return {
            "meta": self.meta,
            "trials": [json.loads(d) for k, d in events if k == "trial"],
            "end": next((json.loads(d) for k, d in events if k == "end"), None),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        view = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                log.debug("live view: " + format, *args)

            def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/":
                    self._send(PAGE.encode(), "text/html; charset=utf-8")
                elif path == "/state.json":
                    self._send(_json(view.state()).encode(), "application/json")
                elif path == "/events":
                    self._events()
                elif path.startswith("/image/"):
                    file = view._file(view.files.get(unquote(path[len("/image/") :]), ""))
                    if file is None:
                        self._send(b"no such image", "text/plain", 404)
                    else:
                        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                        self._send(file.read_bytes(), kind)
                else:
                    self._send(b"not found", "text/plain", 404)

            def _events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                sent = 0
                try:
                    self._event("meta", _json(view.meta))
                    while True:
                        with view.changed:
                            if sent == len(view.events) and not view.stopping:
                                view.changed.wait(KEEPALIVE_S)
                            pending, stopping = view.events[sent:], view.stopping
                        for kind, data in pending:
                            self._event(kind, data)
                        sent += len(pending)
                        if stopping or (pending and pending[-1][0] == "end"):
                            return
                        if not pending:
                            self.wfile.write(b": keep-alive\n\n")
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the page was closed

            def _event(self, kind: str, data: str) -> None:
                self.wfile.write(f"event: {kind}\ndata: {data}\n\n".encode())
                self.wfile.flush()

        return Handler
