"""``megdecode online``: decode a live session (or a recording, for labs without LSL) with an online model.

Everything but the source comes from the online model folder (:mod:`megdecode.artifacts.online_model`):
rate, channels, scaler, onsets (trigger channel and codes, photodiode), phase and gallery. Each trial is
appended to ``<out>/trials.tsv`` and on disk before the next trial is decoded; at the end
``<out>/session.json`` records how the session ended and its numbers. Exit status: 0 when the session
ended normally (``--duration`` reached, the recording replayed, Ctrl-C or SIGTERM), 3 when the source
was lost (no sample for ``--timeout`` seconds, or the connection broke), 2 for bad arguments or a model
or stream that cannot be decoded (named in the message), 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("megdecode.online")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOURCE_LOST = 0, 1, 2, 3
TRIALS, SESSION = "trials.tsv", "session.json"
LIVE_COLUMNS = [
    "onset_sample", "onset_s", "trial_type", "code", "image_id", "status", "skip_reason", "top1", "top5",
    "top5_hit", "latency_ms", "settling",
]  # fmt: skip


class UsageError(Exception):
    """Bad arguments, or a model or stream that cannot be decoded: exit status 2 with the message."""


class Stopped(Exception):
    """SIGTERM: end the session as Ctrl-C does."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="megdecode", description="megdecode command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    online = commands.add_parser(
        "online",
        help="decode a live LSL stream (or a recording) trial by trial",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    online.add_argument("--model", required=True, type=Path, help="online model folder (realtime_model rule)")
    source = online.add_mutually_exclusive_group(required=True)
    source.add_argument("--lsl", metavar="NAME", help="name of the acquisition's LSL stream")
    source.add_argument(
        "--replay", metavar="FILE", type=Path, help="a recording (FIF, CTF .ds) fed as a stream"
    )
    online.add_argument("--out", required=True, type=Path, help="output folder (trials.tsv, session.json)")
    online.add_argument(
        "--allow-zero-phase",
        action="store_true",
        help="decode with a model trained on zero-phase preprocessing (its inputs then differ from training)",
    )
    online.add_argument("--bad-channels", default="", help="comma-separated model channels to leave out")
    online.add_argument(
        "--max-missing-channels",
        type=float,
        default=0.1,
        help="most model channels (fraction) left out through the mask before refusing (default 0.1)",
    )
    online.add_argument("--duration", type=float, help="stop after this many seconds of stream")
    online.add_argument(
        "--timeout", type=float, default=5.0, help="LSL: seconds without a sample before the source is lost"
    )
    online.add_argument("--connect-timeout", type=float, default=10.0, help="LSL: seconds to find the stream")
    online.add_argument("--jitter", type=float, default=0.0, help="LSL: timestamp jitter of the source (s)")
    online.add_argument(
        "--bufsize", type=float, default=2.0, help="LSL: seconds of samples liblsl keeps for this reader"
    )
    online.add_argument("--lsl-config", type=Path, help="lsl_api.cfg for liblsl (sets LSLAPICFG)")
    online.add_argument("--chunk", type=int, default=12, help="replay: samples per chunk (default 12)")
    online.add_argument("--pace", action="store_true", help="replay: at the recording's rate")
    online.add_argument("--events", type=Path, help="events.tsv of the replayed run: names the seen images")
    online.add_argument("--view", type=int, metavar="PORT", help="serve the live view on 127.0.0.1:PORT")
    online.add_argument("--images", type=Path, help="stimulus image folder, for the live view")
    online.add_argument("--torch-threads", type=int, default=1, help="torch threads (default 1: fastest)")
    return parser


@dataclass
class Source:
    """Where chunks come from: the stream's channels and rate, the chunks, and whether it was lost."""

    description: str
    ch_names: list[str]
    sfreq: float
    chunks: Iterator[tuple[np.ndarray, int]]
    lsl: Any = None  # the LSLInput, for an LSL source

    @property
    def lost(self) -> bool:
        return self.lsl is not None and self.lsl.end_reason in ("timeout", "disconnected")


def _lsl_source(args: argparse.Namespace, sfreq: float | None) -> Source:
    from megdecode.online.lsl import LSLInput

    if args.lsl_config is not None:
        os.environ["LSLAPICFG"] = str(args.lsl_config)
    max_samples = None if args.duration is None or sfreq is None else int(round(args.duration * sfreq))
    stream = LSLInput(
        args.lsl,
        sfreq=sfreq,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        max_samples=max_samples,
        jitter=args.jitter,
        bufsize=args.bufsize,
    ).connect()
    return Source(f"LSL stream {args.lsl!r}", stream.ch_names, stream.sfreq, stream.chunks(), stream)


def _file_source(args: argparse.Namespace) -> Source:
    from megdecode.online.lsl import read_recording
    from megdecode.online.replay import recording_chunks

    if args.chunk < 1:
        raise UsageError(f"--chunk must be >= 1, got {args.chunk}")
    try:
        raw = read_recording(args.replay)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    sfreq = float(raw.info["sfreq"])
    stop = raw.n_times if args.duration is None else min(raw.n_times, int(round(args.duration * sfreq)))
    chunks = recording_chunks(raw, args.chunk, args.pace, stop=stop)
    return Source(f"recording {args.replay}", list(raw.ch_names), sfreq, chunks)


@dataclass
class Session:
    """The decoder's ``on_record`` hook: each trial to ``trials.tsv`` (durable first), then the live view."""

    online: Any  # OnlineModel
    trial_log: Any  # TrialLog (set before the first chunk is fed)
    sfreq: float
    listed: Any = None  # ListedEvents of a replayed run, or None
    view: Any = None  # LiveView, or None
    hits: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    n_skipped: int = 0
    n_settling: int = 0

    def __call__(self, record: Any) -> None:
        from megdecode.online.decoder import DecodedTrial

        trial_type, image = self.listed.at(record.onset_sample) if self.listed is not None else (None, None)
        row: dict[str, Any] = {
            "onset_sample": record.onset_sample,
            "onset_s": round(record.onset_sample / self.sfreq, 4),
            "code": record.code,
            "image_id": image,
        }
        if isinstance(record, DecodedTrial):
            image = record.image_id or image
            hit = float(image in record.top5_ids) if image in self.online.images else np.nan
            row |= {
                "trial_type": record.trial_type or trial_type, "image_id": image, "status": "decoded",
                "skip_reason": "", "top1": record.top5_ids[0], "top5": ",".join(record.top5_ids),
                "top5_hit": hit, "latency_ms": 1e3 * record.latency_s, "settling": record.settling,
            }  # fmt: skip
            self.latencies_ms.append(row["latency_ms"])
            if np.isfinite(hit):
                self.hits.append(hit)
            self.n_settling += bool(record.settling)
        else:
            row |= {
                "trial_type": trial_type,
                "status": "skipped",
                "skip_reason": f"{record.reason}: {record.detail}",
            }
            self.n_skipped += 1
        self.trial_log.write(row)
        if self.view is not None:
            self.view.publish(row)

    def summary(self) -> dict[str, Any]:
        n_gallery = len(self.online.gallery)
        lat = np.asarray(self.latencies_ms)
        return {
            "trials_decoded": len(self.latencies_ms),
            "trials_skipped": self.n_skipped,
            "trials_settling": self.n_settling,
            "gallery_trials": len(self.hits),
            "top5_acc": round(float(np.mean(self.hits)), 4) if self.hits else None,
            "chance_top5": round(min(5, n_gallery) / n_gallery, 4),
            "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)}
            if lat.size
            else {},
        }


def _settings(args: argparse.Namespace, online: Any) -> Any:
    if online.phase != "causal" and not args.allow_zero_phase:
        raise UsageError(
            f"{args.model}: the model was trained on preprocessing.phase: {online.phase} (zero-phase filters "
            "that need future samples); online inputs would differ from its training inputs. Retrain with "
            "preprocessing.phase: causal, or pass --allow-zero-phase to decode anyway"
        )
    if not 0 <= args.max_missing_channels < 1:
        raise UsageError(f"--max-missing-channels must be in [0, 1), got {args.max_missing_channels}")
    bad = tuple(c.strip() for c in args.bad_channels.split(",") if c.strip())
    return online.settings(
        allow_zero_phase=args.allow_zero_phase,
        bad_channels=bad,
        max_missing_fraction=args.max_missing_channels,
        torch_threads=args.torch_threads,
    )


def _listed_events(path: Path | None, sfreq: float) -> Any:
    if path is None:
        return None
    from megdecode.io import read_tsv
    from megdecode.online.replay import ListedEvents

    events = read_tsv(path, dtype={"image_id": str})
    if "sample" not in events:
        raise UsageError(f"{path} has no 'sample' column (a BIDS events.tsv of the replayed run has one)")
    return ListedEvents(events.dropna(subset=["sample"]).astype({"sample": int}), sfreq)


def _open(args: argparse.Namespace) -> tuple[Any, Source, Any, Session]:
    """(online model, source, decoder, session) for ``args``; a :class:`UsageError` names what is wrong."""
    from megdecode.artifacts.online_model import read_online_model
    from megdecode.online.decoder import OnlineDecoder
    from megdecode.online.lsl import LSLStreamError

    try:
        online = read_online_model(args.model)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    settings = _settings(args, online)
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be > 0 s, got {args.duration}")
    if (args.out / TRIALS).exists():
        raise UsageError(f"{args.out / TRIALS} exists (another session's trials): choose another --out")
    try:
        source = _lsl_source(args, online.subject_model.recorded_sfreq) if args.lsl else _file_source(args)
    except LSLStreamError as err:
        raise UsageError(str(err)) from err
    session = Session(online, None, source.sfreq, _listed_events(args.events, source.sfreq))
    try:
        decoder = OnlineDecoder(
            online.subject_model, online.gallery, source.sfreq, source.ch_names, settings, on_record=session
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    return online, source, decoder, session


def _decode(source: Source, decoder: Any) -> tuple[str, str | None]:
    """Feed the source's chunks to the decoder until it ends; (status, why the connection broke)."""
    from megdecode.online.lsl import LSLStreamError

    status, broke = "ended", None
    try:
        for chunk, first in source.chunks:
            decoder.feed(chunk, first_sample=first)
    except (KeyboardInterrupt, Stopped):
        status = "stopped"
    except LSLStreamError as err:
        broke = str(err)
    decoder.close()
    return ("source lost" if source.lost or broke else status), broke


def run_session(args: argparse.Namespace) -> int:
    """Decode one session (see the module docstring); returns the exit status."""
    from megdecode.io import write_json
    from megdecode.online.trial_log import TrialLog

    online, source, decoder, session = _open(args)
    view = None
    with TrialLog(args.out / TRIALS, LIVE_COLUMNS, mode="new") as trial_log:
        session.trial_log = trial_log
        if args.view is not None:
            from megdecode.online.live_view import LiveView

            view = session.view = LiveView(online, args.images, port=args.view).start()
            print(f"live view: {view.url}", flush=True)
        log.info("decoding sub-%s (%s) from %s into %s", online.subject, online.backbone, source.description,
                 args.out)  # fmt: skip
        try:
            status, broke = _decode(source, decoder)
        finally:
            if source.lsl is not None:
                source.lsl.close()
        last = decoder.n_received - 1
        record = {
            "status": status,
            "source": source.description,
            "samples_received": decoder.n_received,
            "last_sample_s": round(last / source.sfreq, 4) if last >= 0 else None,
            "model": {"subject": online.subject, "backbone": online.backbone, "seed": online.seed,
                      "phase": online.phase, "gallery": online.gallery_split},
            **session.summary(),
        }  # fmt: skip
        write_json(record, args.out / SESSION)
        if view is not None:
            view.publish(record, kind="end")
            view.stop()
    if status == "source lost":
        when = f"{record['last_sample_s']:.3f} s into the session (sample {last})" if last >= 0 else "never"
        print(
            f"source lost: {source.description}: {broke or f'no sample for {args.timeout:g} s'}; last sample "
            f"{when}; {record['trials_decoded']} trials decoded, {record['trials_skipped']} skipped, all in "
            f"{args.out / TRIALS}",
            file=sys.stderr,
        )
        return EXIT_SOURCE_LOST
    print(
        f"{status}: {decoder.n_received} samples; {record['trials_decoded']} trials decoded, "
        f"{record['trials_skipped']} skipped; top-5 {record['top5_acc']} (chance {record['chance_top5']}) "
        f"on {record['gallery_trials']} gallery trials; trials in {args.out / TRIALS}"
    )
    return EXIT_OK


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped


def main(argv: Sequence[str] | None = None) -> int:
    """The ``megdecode`` console command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        return run_session(args)
    except UsageError as err:
        print(f"megdecode online: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
