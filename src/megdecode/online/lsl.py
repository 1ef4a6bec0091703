"""Lab Streaming Layer (LSL) input and output for online decoding, through mne-lsl.

- :class:`LSLInput` / :func:`lsl_chunks` read a live stream (a real acquisition or a replay) chunk by chunk
  as ``(chunk (n_channels, n_samples) float64, first_sample)``, the input the online decoder's ``feed`` takes.
  The sample counter counts from the first sample this reader received; samples missing from the stream
  (a gap in its timestamps) advance it, so a consumer sees a gap as ``first_sample`` jumping ahead.
- :func:`publish_recording` replays a recording (FIF, CTF ``.ds``, or an ``mne.io.Raw``) as a live stream
  (:class:`RecordingPublisher`, on mne-lsl's public ``StreamOutlet``), so a replay and a real acquisition
  take the same code path.
- :func:`write_lsl_api_config` writes an ``lsl_api.cfg`` (liblsl reads the file named by ``LSLAPICFG``).

mne-lsl is an optional dependency (extra ``realtime``): it is imported only when a stream is opened.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import mne

log = logging.getLogger(__name__)

REQUIREMENT = "mne-lsl==1.14.*"
RESOLVE_SCOPES = ("machine", "link", "site", "organization", "global")


class LSLStreamError(RuntimeError):
    """A stream that cannot be read as the consumer expects (absent, other channels, other rate)."""


def _mne_lsl() -> Any:
    """The mne-lsl modules, imported on first use, with a clear error when the package is absent."""
    try:
        import mne_lsl.lsl
        import mne_lsl.stream
    except ImportError as err:
        raise ImportError(
            "reading or publishing a Lab Streaming Layer stream needs mne-lsl, which is not installed: "
            f"install the 'realtime' extra (pip install 'megdecode[realtime]') or pip install '{REQUIREMENT}'"
        ) from err
    return mne_lsl


def write_lsl_api_config(
    path: str | Path,
    *,
    resolve_scope: str = "machine",
    known_peers: Sequence[str] = ("127.0.0.1",),
    ipv6: bool = False,
    log_file: str | Path | None = None,
    tuning: Mapping[str, float | int | str] | None = None,
) -> Path:
    """Write an ``lsl_api.cfg``; point liblsl at it with ``LSLAPICFG=<path>`` before the first stream opens.

    The defaults keep discovery on this machine: queries go to 127.0.0.1 only, with a multicast TTL of 0
    (``ResolveScope = machine``), IPv6 off. A lab whose acquisition runs on another computer uses
    ``resolve_scope="link"`` (or ``"site"``) and lists that computer in ``known_peers``. ``tuning`` sets
    keys of liblsl's ``[tuning]`` section (e.g. ``{"TimeProbeInterval": 0.005}``); ``log_file`` makes
    liblsl log there (it names the config file it loaded).
    """
    if resolve_scope not in RESOLVE_SCOPES:
        raise ValueError(f"resolve_scope {resolve_scope!r} is not one of liblsl's scopes {RESOLVE_SCOPES}")
    peers = ", ".join(known_peers)
    lines = [
        "[ports]",
        f"IPv6 = {'allow' if ipv6 else 'disable'}",
        "",
        "[multicast]",
        f"ResolveScope = {resolve_scope}",
        "",
        "[lab]",
        f"KnownPeers = {{{peers}}}",
    ]
    if tuning:
        lines += ["", "[tuning]", *(f"{key} = {value}" for key, value in tuning.items())]
    if log_file is not None:
        lines += ["", "[log]", "level = 0", f"file = {Path(log_file)}"]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Gap:
    """Samples missing from a stream: ``missing`` samples before the sample counted ``first_sample``."""

    first_sample: int
    missing: int


def find_gaps(
    timestamps: np.ndarray, previous: float | None, sfreq: float, jitter: float = 0.0
) -> list[tuple[int, int]]:
    """Where samples are missing in a chunk, from its LSL timestamps: ``[(index in chunk, n missing), ...]``.

    A step between consecutive timestamps (``previous`` is the last timestamp of the chunk before, or
    None for the first chunk) is a gap when it exceeds one sample period by more than
    ``max(half a period, jitter)``; ``round(step) - 1`` samples are missing there. ``jitter`` (seconds)
    is the timestamp jitter the source is allowed: 0 for a source that stamps samples by its sample clock
    (``publish_recording`` does), a few ms for a source that stamps chunks on arrival.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if previous is not None:
        ts = np.concatenate([[previous], ts])
    if ts.size < 2:
        return []
    steps = np.diff(ts) * sfreq
    tolerance = max(0.5, jitter * sfreq)
    offset = 0 if previous is not None else 1
    return [(int(i) + offset, int(round(steps[i])) - 1) for i in np.flatnonzero(steps > 1.0 + tolerance)]


class LSLInput:
    """A live LSL stream read chunk by chunk, checked against the channels and rate the consumer expects.

    Iterating yields ``(chunk, first_sample)``: ``chunk`` is a float64 array (n_channels, n_samples) with
    its rows in ``ch_names`` order (all the stream's channels when ``ch_names`` is None), ``first_sample``
    the counter of its first sample. Samples are read in arrival order; iteration stops by itself when no
    sample arrived for ``timeout`` seconds (the source ended or stalled) or after ``max_samples`` samples.
    ``jitter``: see :func:`find_gaps`. ``bufsize`` (seconds): liblsl keeps up to that much unread data
    and drops older samples, so a consumer that joins a replay must be reading within it (connecting takes
    about 1.3 s: opening the stream and its clock-offset probes); mne-lsl also copies a buffer that long
    on every read (about 1 ms at 2 s of 356 channels), so keep it short.
    Use as a context manager (connects on entry, disconnects on exit)::

        with LSLInput("MEG", ch_names=decoder_channels, sfreq=1200.0) as stream:
            for chunk, first_sample in stream:
                trials = decoder.feed(chunk, first_sample)
    """

    def __init__(
        self,
        stream_name: str,
        *,
        ch_names: Sequence[str] | None = None,
        sfreq: float | None = None,
        source_id: str | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        max_samples: int | None = None,
        jitter: float = 0.0,
        bufsize: float = 2.0,
        poll_interval: float = 0.001,
    ) -> None:
        for name, value in [("timeout", timeout), ("connect_timeout", connect_timeout), ("bufsize", bufsize)]:
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value}")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        if jitter < 0 or poll_interval < 0:
            raise ValueError(f"jitter and poll_interval must be >= 0, got {jitter} and {poll_interval}")
        if ch_names is not None and len(set(ch_names)) != len(ch_names):
            raise ValueError("ch_names lists a channel more than once")
        self.stream_name = stream_name
        self.expected_ch_names = None if ch_names is None else list(ch_names)
        self.expected_sfreq = sfreq
        self.source_id = source_id
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_samples = max_samples
        self.jitter = float(jitter)
        self.bufsize = float(bufsize)
        self.poll_interval = float(poll_interval)
        self.gaps: list[Gap] = []
        self.n_received = 0
        # why iteration ended: None (not ended), "max_samples", or "timeout" (no sample for `timeout` s:
        # the source ended, died or stalled); the LSL time of the last sample received
        self.end_reason: str | None = None
        self.last_timestamp: float | None = None
        self._stream: Any = None
        self._picks: np.ndarray | None = None
        self.ch_names: list[str] = []
        self.sfreq = 0.0

    def __repr__(self) -> str:
        state = "connected" if self._stream is not None else "closed"
        return f"LSLInput({self.stream_name!r}, {state}, received={self.n_received}, gaps={len(self.gaps)})"

    @property
    def n_missing(self) -> int:
        """Samples the stream's timestamps say were sent but never arrived."""
        return sum(gap.missing for gap in self.gaps)

    def connect(self) -> LSLInput:
        """Resolve the stream by name, open it, and check its rate and channels."""
        if self._stream is not None:
            return self
        stream = _mne_lsl().stream.StreamLSL(self.bufsize, name=self.stream_name, source_id=self.source_id)
        try:
            stream.connect(acquisition_delay=None, timeout=self.connect_timeout)
        except RuntimeError as err:
            raise LSLStreamError(
                f"LSL stream {self.stream_name!r}: no single stream of that name found within "
                f"{self.connect_timeout:g} s ({err}). Is the acquisition (or publish_recording) running, "
                "and do both ends use the same lsl_api.cfg scope (see docs/realtime.md)?"
            ) from err
        try:
            self._check(stream)
        except BaseException:
            stream.disconnect()
            raise
        self._stream = stream
        log.info(
            "connected to LSL stream %r: %d channels read of %d, %g Hz",
            self.stream_name,
            len(self.ch_names),
            len(stream.info["ch_names"]),
            self.sfreq,
        )
        return self

    def _check(self, stream: Any) -> None:
        sfreq = float(stream.info["sfreq"])
        if sfreq <= 0:
            raise LSLStreamError(
                f"LSL stream {self.stream_name!r} has an irregular sampling rate; the decoder needs a "
                "regularly sampled MEG stream"
            )
        if self.expected_sfreq is not None and abs(sfreq - self.expected_sfreq) > 1e-6 * self.expected_sfreq:
            raise LSLStreamError(
                f"LSL stream {self.stream_name!r} is sampled at {sfreq:g} Hz, the consumer expects "
                f"{self.expected_sfreq:g} Hz: stream at {self.expected_sfreq:g} Hz or use a model trained "
                f"on {sfreq:g} Hz recordings"
            )
        names = list(stream.info["ch_names"])
        if self.expected_ch_names is None:
            picks = np.arange(len(names))
        else:
            index = {name: i for i, name in enumerate(names)}
            missing = [name for name in self.expected_ch_names if name not in index]
            if missing:
                raise LSLStreamError(
                    f"LSL stream {self.stream_name!r} lacks {len(missing)} of the "
                    f"{len(self.expected_ch_names)} channels the consumer expects (first missing: "
                    f"{missing[:5]}; the stream has {len(names)}, e.g. {names[:5]}): stream the model's "
                    "channel set, or use a model trained on this one"
                )
            picks = np.array([index[name] for name in self.expected_ch_names])
        self.sfreq = sfreq
        self.ch_names = [names[i] for i in picks]
        self._picks = picks

    def close(self) -> None:
        """Disconnect from the stream (safe to call twice)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            if stream.connected:
                stream.disconnect()
            log.info(
                "LSL stream %r closed: %d samples received, %d gaps (%d samples missing)",
                self.stream_name,
                self.n_received,
                len(self.gaps),
                self.n_missing,
            )

    def __enter__(self) -> LSLInput:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        return self.chunks()

    def chunks(self) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(chunk, first_sample)`` as samples arrive; see the class docstring for when it stops."""
        self.connect()
        stream = self._stream
        next_sample = 0
        last_timestamp: float | None = None
        last_arrival = time.monotonic()
        while self.max_samples is None or next_sample < self.max_samples:
            if not stream.connected:  # mne-lsl disconnects (and logs why) when a read fails
                self.end_reason = "disconnected"
                raise LSLStreamError(
                    f"LSL stream {self.stream_name!r}: the connection broke after {next_sample} samples "
                    "(mne-lsl logged the reason)"
                )
            stream.acquire()
            n_new = stream.n_new_samples
            if n_new == 0:
                if time.monotonic() - last_arrival > self.timeout:
                    self.end_reason = "timeout"
                    log.warning(
                        "LSL stream %r: no sample for %g s after %d samples (the source ended, died or "
                        "stalled); stopping", self.stream_name, self.timeout, next_sample,
                    )  # fmt: skip
                    return
                time.sleep(self.poll_interval)
                continue
            last_arrival = time.monotonic()
            n = min(n_new, stream.n_buffer)
            # (n - 0.5) / sfreq seconds: get_data ceils winsize * sfreq, so exactly n samples come back
            data, timestamps = stream.get_data(winsize=(n - 0.5) / self.sfreq, picks=self._picks, exclude=())
            if data.shape[1] != n:  # pragma: no cover - mne-lsl's buffer arithmetic changed
                raise LSLStreamError(f"asked the stream buffer for {n} samples, got {data.shape[1]}")
            cuts = find_gaps(timestamps, last_timestamp, self.sfreq, self.jitter)
            if n_new > n and not cuts:  # the ring buffer overflowed: the oldest new samples were overwritten
                cuts = [(0, n_new - n)]
            last_timestamp = self.last_timestamp = float(timestamps[-1])
            bounds = [(0, 0)] + cuts + [(n, 0)]
            for (start, missing), (stop, _) in zip(bounds[:-1], bounds[1:], strict=True):
                if missing:
                    self.gaps.append(Gap(next_sample + missing, missing))
                    log.warning(
                        "LSL stream %r: %d samples missing before sample %d",
                        self.stream_name,
                        missing,
                        next_sample + missing,
                    )
                    next_sample += missing
                if self.max_samples is not None:
                    stop = min(stop, start + self.max_samples - next_sample)
                if stop <= start:
                    continue
                chunk = np.ascontiguousarray(data[:, start:stop], dtype=np.float64)
                yield chunk, next_sample
                next_sample += stop - start
                self.n_received += stop - start
        self.end_reason = "max_samples"


def lsl_chunks(stream_name: str, **kwargs: Any) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(chunk, first_sample)`` from the live LSL stream ``stream_name``; see :class:`LSLInput`.

    Keyword arguments are :class:`LSLInput`'s (``ch_names``, ``sfreq``, ``timeout``, ``max_samples``, ...).
    The stream is disconnected when the generator ends or is closed.
    """
    with LSLInput(stream_name, **kwargs) as stream:
        yield from stream


def read_recording(path: str | Path) -> mne.io.BaseRaw:
    """Load a recording (any format ``mne.io.read_raw`` reads: FIF, CTF ``.ds``, ...) into memory."""
    import mne

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recording to publish not found: {path}")
    try:
        return mne.io.read_raw(path, preload=True, verbose="error")
    except ValueError as err:
        raise ValueError(
            f"cannot read the recording {path} ({err}): publish a FIF or CTF .ds recording, or pass an "
            "mne.io.Raw you loaded yourself"
        ) from err


class RecordingPublisher:
    """A recording played once as a live LSL stream, paced at its sampling rate, from a background thread.

    Built on mne-lsl's public LSL API only (``StreamInfo``, ``StreamOutlet``, ``local_clock``): the
    stream is announced at once; with ``wait_for_consumer`` (seconds) its first sample is pushed only
    when a consumer has connected (an inlet receives only what is pushed after it connected; none in
    time: nothing is streamed); each chunk of ``chunk_size`` samples is pushed when its last sample
    would have been recorded, with one timestamp per sample (``t0 + i / sfreq``: contiguous, so a
    consumer reads no gap); after the last chunk the stream stays open ``linger`` seconds (closing right
    after the last push drops what is still in the send queue). :meth:`stop` ends the stream at once, as a
    source that dies would.
    """

    def __init__(
        self,
        raw: mne.io.BaseRaw,
        stream_name: str,
        chunk_size: int,
        source_id: str,
        wait_for_consumer: float | None,
        linger: float,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        lsl = _mne_lsl().lsl
        self._clock = lsl.local_clock
        self.name = stream_name
        self.sfreq = float(raw.info["sfreq"])
        self.data = np.ascontiguousarray(raw.get_data().T)  # (n_samples, n_channels) float64
        types = sorted(set(raw.get_channel_types()))
        info = lsl.StreamInfo(
            stream_name,
            types[0] if len(types) == 1 else "",
            len(raw.ch_names),
            self.sfreq,
            "float64",
            source_id,
        )
        info.set_channel_info(raw.info)
        self._outlet: Any = lsl.StreamOutlet(info, chunk_size)
        self.chunk_size = int(chunk_size)
        self.wait_for_consumer = wait_for_consumer
        self.linger = float(linger)
        self.consumer_connected: bool | None = None
        self.n_pushed = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"publish-{stream_name}", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> RecordingPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the stream now (the outlet is destroyed: consumers see the source vanish)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._close()

    def _wait(self, until: float) -> bool:
        """Sleep until LSL time ``until``; False when stopped meanwhile."""
        delay = until - self._clock()
        return not (delay > 0 and self._stopping.wait(delay))

    def _connected(self) -> bool:
        if self.wait_for_consumer is None:
            return True
        deadline = self._clock() + self.wait_for_consumer
        while not self._stopping.is_set() and self._clock() < deadline:
            if self._outlet.wait_for_consumers(min(0.1, max(deadline - self._clock(), 0.0))):
                return True
        return False

    def _run(self) -> None:
        try:
            self.consumer_connected = self._connected()
            if not self.consumer_connected:
                if not self._stopping.is_set():
                    log.warning(
                        "%s: no consumer within %g s, not streaming", self.name, self.wait_for_consumer
                    )
                return
            n = len(self.data)
            t0 = self._clock()
            for start in range(0, n, self.chunk_size):
                stop = min(n, start + self.chunk_size)
                if not self._wait(t0 + stop / self.sfreq):
                    return
                stamps = t0 + np.arange(start, stop) / self.sfreq
                self._outlet.push_chunk(self.data[start:stop], timestamp=stamps)
                self.n_pushed = stop
            self._wait(self._clock() + self.linger)
        finally:
            self._close()

    def _close(self) -> None:
        outlet, self._outlet = self._outlet, None
        del outlet  # the last reference: the outlet is destroyed and the stream disappears


@contextlib.contextmanager
def publish_recording(
    recording: str | Path | mne.io.BaseRaw,
    stream_name: str,
    chunk_size: int = 12,
    *,
    source_id: str | None = None,
    wait_for_consumer: float | None = 10.0,
    linger: float = 0.5,
) -> Iterator[RecordingPublisher]:
    """Replay ``recording`` once as a live LSL stream named ``stream_name``, paced at its sampling rate.

    ``chunk_size`` samples are pushed at a time (12 at 1200 Hz: every 10 ms); see
    :class:`RecordingPublisher` for ``wait_for_consumer`` and ``linger``. Yields the running publisher
    (``.running`` turns False at the end of the recording; ``.stop()`` kills the stream); it is stopped
    on exit.
    """
    import mne

    raw = recording if isinstance(recording, mne.io.BaseRaw) else read_recording(recording)
    publisher = RecordingPublisher(
        raw, stream_name, chunk_size, source_id or stream_name, wait_for_consumer, linger
    ).start()
    try:
        yield publisher
    finally:
        publisher.stop()
