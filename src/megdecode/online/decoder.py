"""The online decoder: raw chunks in, one decoded trial out as soon as its window's last sample is in.

:class:`OnlineDecoder` is one subject and one backbone: the causal front end
(:class:`~megdecode.preprocessing.causal.CausalEpocher`: band-pass with state kept across chunks,
event-aligned decimation, pre-stimulus baseline), the training-fitted robust scaler and clamp, the brain
module (:class:`~megdecode.models.StreamingDecoder`: each window's samples are pushed while it is being
recorded, so only the last few outputs of each layer are left when its last sample arrives) and a
:class:`Gallery` for the top-5. Onsets come from a trigger channel (rising edges, codes mapped to trial
types), optionally moved to the first photodiode edge after each trigger as the offline conversion
does (:class:`~megdecode.online.photodiode.PhotodiodeOnsets`), or from a given events list.

Bad input never stops the stream: a chunk with NaNs or a gap in the sample counter skips the trials
whose window (and the filter's settling time after it) it touches, with the reason logged and counted; a
trigger code that is not in the study skips that trial. A channel set that lacks the model's channels
or a stream at another rate is an error at construction.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from megdecode.models import BrainModule, RealtimeDecoder, StreamingDecoder
from megdecode.online.photodiode import PhotodiodeOnsets
from megdecode.preprocessing.causal import CausalEpocher, causal_sos, causal_window
from megdecode.preprocessing.params import PreprocessingParams

log = logging.getLogger(__name__)

# reasons a trial is skipped (the keys of OnlineDecoder.skip_counts)
SKIP_NAN, SKIP_GAP, SKIP_CODE, SKIP_EDGE, SKIP_END, SKIP_DIODE = (
    "nan",
    "gap",
    "unknown_code",
    "before_stream",
    "stream_end",
    "no_photodiode_edge",
)


@dataclass(frozen=True)
class DecodedTrial:
    """One decoded trial. Times are ``time.perf_counter()`` values."""

    onset_sample: int  # image onset, in samples of the stream (0 = its first sample)
    code: int | None  # trigger code (None when the onset came from an events list without one)
    trial_type: str | None
    image_id: str | None  # the seen image when the events list names it
    latent: np.ndarray  # the CLIP (retrieval) head, (dim,) float32, standardised target space
    top5_index: tuple[int, ...]  # gallery rows, best first
    top5_ids: tuple[str, ...]
    last_sample: int  # the window's last needed sample
    t_last_sample_arrived: float  # when the chunk holding ``last_sample`` reached feed()
    t_top5_ready: float
    t_filtered: float = float("nan")  # when the causal front end had filtered that chunk (its share)

    @property
    def latency_s(self) -> float:
        return self.t_top5_ready - self.t_last_sample_arrived


@dataclass(frozen=True)
class SkippedTrial:
    onset_sample: int
    code: int | None
    reason: str  # one of the SKIP_* keys
    detail: str


@dataclass(frozen=True)
class Event:
    """An onset known in advance (events list mode)."""

    sample: int
    trial_type: str | None = None
    image_id: str | None = None
    code: int | None = None


class Gallery:
    """Candidate images for the top-5: unit-norm standardised latents, one row per image id."""

    def __init__(self, image_ids: Sequence[str], candidates: np.ndarray) -> None:
        cand = np.asarray(candidates, dtype=np.float64).reshape(len(image_ids), -1)
        norm = np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-12)
        self.image_ids = np.asarray(image_ids).astype(str)
        self.unit = (cand / norm).astype(np.float32)

    def __len__(self) -> int:
        return len(self.image_ids)

    def top(self, latent: np.ndarray, k: int = 5) -> np.ndarray:
        """Rows of the ``k`` most cosine-similar candidates, best first."""
        sim = self.unit @ np.asarray(latent, dtype=np.float32).reshape(-1)
        k = min(k, len(sim))
        part = np.argpartition(-sim, k - 1)[:k]
        return part[np.argsort(-sim[part], kind="stable")]


@dataclass
class _Trial:
    onset: int
    code: int | None
    trial_type: str | None
    image_id: str | None
    decoder: StreamingDecoder | None = None
    baseline: np.ndarray | None = None
    pushed: int = 0


class OnlineDecoder:
    """One subject + backbone, decoding trials from raw chunks as they arrive (see the module docstring).

    ``stream_channels`` names the rows of every chunk; the model's channels (``model_channels``, the
    order of the preprocessed ``channels.tsv``) are picked from them by name. Onsets: ``stim_channel``
    (one of ``stream_channels``) with ``trigger_codes`` (trial type -> code), or ``events``; with
    ``photodiode_channel`` each trigger's onset is its first photodiode edge within
    ``photodiode_max_lag_s`` (``photodiode_threshold``: the edge level, as in the ``bids`` config; a
    trigger without an edge is a logged, counted skip, reason ``no_photodiode_edge``); ``onset_shift``
    (samples) is added to every trigger or photodiode onset. Trials of
    ``decode_types`` are decoded; other known types are ignored. ``streaming=False`` runs
    :class:`~megdecode.models.RealtimeDecoder` on each completed window instead of the streaming decoder
    (same outputs to ~1e-6: fewer weight reads per trial, more work after the last sample).
    Push schedule of the streaming decoder (each push reads every layer's weights once, so pushing
    single rows is memory-bound): one bulk push when the window has all but ``push_lead`` decimated
    samples, then the rest when its last sample arrives (that push computes the new rows and each
    layer's receptive-field tail); ``push_every`` > 0 adds a push whenever that many samples wait.
    ``allow_zero_phase`` runs the causal front end for a model trained on zero-phase preprocessing
    (a logged mismatch, for replays of such models), instead of refusing it.
    """

    def __init__(
        self,
        brain: BrainModule,
        subject_index: int,
        params: PreprocessingParams,
        raw_sfreq: float,
        stream_channels: Sequence[str],
        model_channels: Sequence[str],
        center: np.ndarray,
        scale: np.ndarray,
        gallery: Gallery,
        *,
        expected_raw_sfreq: float | None = None,
        stim_channel: str | None = None,
        trigger_codes: Mapping[str, int] | None = None,
        events: Sequence[Event] | None = None,
        decode_types: Sequence[str] | None = ("exp", "test"),
        onset_shift: int = 0,
        photodiode_channel: str | None = None,
        photodiode_max_lag_s: float = 0.1,
        photodiode_threshold: float = 0.5,
        settle_s: float = 1.0,
        streaming: bool = True,
        push_lead: int = 6,
        push_every: int = 0,
        block: int = 4096,
        name: str = "stream",
        allow_zero_phase: bool = False,
    ) -> None:
        self.name = name
        if params.phase != "causal" and allow_zero_phase:
            log.warning(
                "%s: model preprocessed with phase %r; the online front end is causal (inputs differ from "
                "training)", name, params.phase,
            )  # fmt: skip
            params = dataclasses.replace(params, phase="causal")
        if params.phase != "causal":
            raise ValueError(
                f"{name}: the online decoder needs preprocessing.phase: causal (the model was preprocessed "
                f"with phase {params.phase!r}, which needs future samples); retrain with phase: causal"
            )
        rate = expected_raw_sfreq if expected_raw_sfreq is not None else params.raw_sfreq
        if rate is not None and abs(float(raw_sfreq) - float(rate)) > 1e-6:
            raise ValueError(
                f"{name}: stream sampled at {raw_sfreq} Hz but the model's recordings were at {rate} Hz; "
                "resample the stream at the source or train on recordings at this rate"
            )
        self.window = causal_window(params, float(raw_sfreq), name)
        stream_channels = [str(c) for c in stream_channels]
        position = {c: i for i, c in enumerate(stream_channels)}
        missing = [c for c in model_channels if c not in position]
        if missing:
            raise ValueError(
                f"{name}: the stream lacks {len(missing)} of the model's {len(model_channels)} channels "
                f"(first: {missing[:5]}); stream the channels of the training recordings (channels.tsv)"
            )
        if len(model_channels) != brain.spatial.n_channels:
            raise ValueError(
                f"{name}: {len(model_channels)} model channels but the brain module has "
                f"{brain.spatial.n_channels}; pass the channels.tsv of the subject the model was trained on"
            )
        if brain.aggregate.n_times not in (0, self.window.n_times) and brain.aggregate.mode == "affine":
            raise ValueError(
                f"{name}: the brain module reads {brain.aggregate.n_times} samples, the preprocessing window "
                f"{self.window.n_times}; use the preprocessing config the model was trained with"
            )
        if (stim_channel is None) == (events is None):
            raise ValueError(f"{name}: give either stim_channel (with trigger_codes) or events, not both")
        self.rows = np.array([position[c] for c in model_channels])
        self.model_channels = [str(c) for c in model_channels]
        self.params = params
        self.n_stream_channels = len(stream_channels)
        self.stim_row = None
        if stim_channel is not None:
            if stim_channel not in position:
                raise ValueError(
                    f"{name}: trigger channel {stim_channel!r} is not among the stream's channels"
                )
            if not trigger_codes:
                raise ValueError(f"{name}: reading triggers from {stim_channel!r} needs trigger_codes")
            self.stim_row = position[stim_channel]
        self.diode_row, self.diode = None, None
        if photodiode_channel is not None:
            if stim_channel is None:
                raise ValueError(f"{name}: photodiode_channel corrects trigger onsets: give stim_channel too")
            if photodiode_channel not in position:
                raise ValueError(
                    f"{name}: photodiode channel {photodiode_channel!r} is not among the stream's channels; "
                    "stream it, or set bids.photodiode_channel: null (onsets at the triggers)"
                )
            self.diode_row = position[photodiode_channel]
            self.diode = PhotodiodeOnsets(float(raw_sfreq), photodiode_max_lag_s, photodiode_threshold)
        self.type_of_code = {int(v): str(k) for k, v in (trigger_codes or {}).items()}
        self.decode_types = None if decode_types is None else set(decode_types)
        self.pending = sorted(events or [], key=lambda e: e.sample)
        self._next_event = 0
        self.onset_shift = int(onset_shift)
        self.settle = int(round(settle_s * raw_sfreq))
        self.center32 = np.asarray(center, dtype=np.float32)[:, None]
        self.scale32 = np.asarray(scale, dtype=np.float32)[:, None]
        self.clamp = float(params.clamp)
        self.gallery = gallery
        self.subject_index = int(subject_index)
        self.streaming = streaming
        self.push_lead = max(1, int(push_lead))
        self.push_every = max(0, int(push_every))
        self.brain = brain.eval()
        # only the CLIP head ranks images: the MSE head is never computed online
        self._template = StreamingDecoder(brain, subject_index, heads=("clip",)) if streaming else None
        self._spare: list[StreamingDecoder] = [self._template] if streaming else []  # free buffers
        self._whole = None if streaming else RealtimeDecoder(brain, subject_index)
        self.epocher = CausalEpocher(causal_sos(params, float(raw_sfreq)), len(self.rows), self.window, block)
        self.n_received = 0  # next expected sample counter
        self._t_filtered = float("nan")
        self._last_raw: np.ndarray | None = None  # last good raw sample (stream rows) for holding
        self._last_stim = 0
        self.active: list[_Trial] = []
        self.corrupt: list[tuple[int, int, str]] = []  # [start, stop) incl. settling, reason
        self.decoded: list[DecodedTrial] = []
        self.skipped: list[SkippedTrial] = []
        self.skip_counts: Counter[str] = Counter()
        self.n_ignored = 0  # onsets of trial types not decoded (catch)

    # ---- public API
    def feed(self, chunk: np.ndarray, first_sample: int | None = None) -> list[DecodedTrial]:
        """Add raw samples (n_stream_channels, n); ``first_sample`` is the stream's counter of the first
        one (None: contiguous with the previous chunk). Returns the trials completed by this chunk."""
        arrived = time.perf_counter()
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[0] != self.n_stream_channels:
            raise ValueError(
                f"{self.name}: chunk of shape {x.shape}; expected ({self.n_stream_channels}, n_samples)"
            )
        if first_sample is not None and first_sample != self.n_received:
            if first_sample < self.n_received:  # repeated samples: drop what was already fed
                drop = self.n_received - first_sample
                log.warning("%s: %d repeated sample(s) at %d dropped", self.name, drop, first_sample)
                x = x[:, drop:]
            else:
                self._fill_gap(first_sample - self.n_received, arrived)
        out: list[DecodedTrial] = []
        for a in range(0, x.shape[1], self.epocher.block):
            out += self._piece(x[:, a : a + self.epocher.block], arrived)
        self.decoded += out
        return out

    def close(self) -> list[SkippedTrial]:
        """End of stream: trials still waiting for samples are skipped (reason ``stream_end``)."""
        for trial in self.active:
            self._skip(trial.onset, trial.code, SKIP_END, "the stream ended before the window was complete")
            self._release(trial)
        self.active = []
        for event in self.pending[self._next_event :]:
            self._skip(event.sample, event.code, SKIP_END, "the stream ended before the onset")
        if self.diode is not None:
            for trigger, (code, _) in self.diode.waiting:
                self._skip(trigger, code, SKIP_END, "the stream ended before the photodiode search window")
            self.diode.waiting = []
        self._next_event = len(self.pending)
        return self.skipped

    # ---- internals
    def _skip(self, onset: int, code: int | None, reason: str, detail: str) -> None:
        self.skipped.append(SkippedTrial(int(onset), code, reason, detail))
        self.skip_counts[reason] += 1
        log.warning("%s: trial at sample %d skipped (%s): %s", self.name, onset, reason, detail)

    def _release(self, trial: _Trial) -> None:
        """Give a trial's streaming buffers back for the next trial (no allocation per trial)."""
        if trial.decoder is not None:
            trial.decoder.reset()
            self._spare.append(trial.decoder)
            trial.decoder = None

    def _fill_gap(self, n_missing: int, arrived: float) -> None:
        """Missing samples: hold the last one through the filter (keeps the counters aligned)."""
        start = self.n_received
        log.warning("%s: %d sample(s) missing at %d (dropped chunk)", self.name, n_missing, start)
        self.corrupt.append((start, start + n_missing + self.settle, SKIP_GAP))
        last = self._last_raw if self._last_raw is not None else np.zeros(self.n_stream_channels)
        fill = np.repeat(last[:, None], min(n_missing, self.epocher.block), axis=1)
        if self.stim_row is not None:
            fill[self.stim_row] = self._last_stim  # no fake rising edge
        for a in range(0, n_missing, self.epocher.block):
            self._piece(fill[:, : min(self.epocher.block, n_missing - a)], arrived, held=True)

    def _piece(self, x: np.ndarray, arrived: float, held: bool = False) -> list[DecodedTrial]:
        start, n = self.n_received, x.shape[1]
        if n == 0:
            return []
        meg = np.asarray(x[self.rows], dtype=np.float64)  # a copy (fancy index): filtered in place
        if not np.isfinite(meg.sum()):  # NaN/inf propagate into the sum: one cheap pass
            bad = ~np.isfinite(meg).all(axis=0)
            where = np.flatnonzero(bad)
            log.warning(
                "%s: %d sample(s) with NaN/inf between %d and %d", self.name, len(where), start + where[0],
                start + where[-1],
            )  # fmt: skip
            self.corrupt.append((start + int(where[0]), start + int(where[-1]) + 1 + self.settle, SKIP_NAN))
            for i in where:  # hold the last good sample
                meg[:, i] = meg[:, i - 1] if i > 0 else self._last_good(meg)
        if self.diode is not None:
            self.diode.add(x[self.diode_row], start)
        if not held:
            self._onsets_from_stim(x, start)
        if self.diode is not None:
            self._onsets_from_photodiode(start + n)
        self._onsets_from_events(start + n)
        last = np.array(x[:, -1], dtype=np.float64)
        last[self.rows] = meg[:, -1]
        self.epocher.feed(meg, in_place=True)
        self._t_filtered = time.perf_counter()
        self.n_received += n
        last[~np.isfinite(last)] = 0.0
        self._last_raw = last
        return self._advance(arrived)

    def _last_good(self, meg: np.ndarray) -> np.ndarray:
        if self._last_raw is not None:
            return self._last_raw[self.rows]
        finite = np.flatnonzero(np.isfinite(meg).all(axis=0))
        return meg[:, finite[0]] if finite.size else np.zeros(meg.shape[0])

    def _onsets_from_stim(self, x: np.ndarray, start: int) -> None:
        if self.stim_row is None:
            return
        stim = np.asarray(x[self.stim_row], dtype=np.float64)
        stim = np.where(np.isfinite(stim), stim, 0.0).round().astype(np.int64)
        previous = np.concatenate([[self._last_stim], stim[:-1]])
        for i in np.flatnonzero((stim != previous) & (stim != 0)):
            code = int(stim[i])
            onset = start + int(i) + self.onset_shift
            trial_type = self.type_of_code.get(code)
            if trial_type is None:
                known = {c: t for c, t in sorted(self.type_of_code.items())}
                self._skip(
                    onset, code, SKIP_CODE, f"trigger code {code} is not in the study (codes: {known})"
                )
                continue
            if self.diode is not None and self._decoded_type(trial_type):  # started at its photodiode edge
                self.diode.expect(start + int(i), (code, trial_type))
                continue
            self._start(_Trial(onset, code, trial_type, None))
        self._last_stim = int(stim[-1])

    def _onsets_from_photodiode(self, stop: int) -> None:
        """Start the trials whose photodiode search window ends before ``stop`` at their light edge."""
        for found in self.diode.resolve(stop):
            code, trial_type = found.payload
            if found.onset is None:
                self._skip(found.trigger + self.onset_shift, code, SKIP_DIODE, found.detail)
                continue
            self._start(_Trial(found.onset + self.onset_shift, code, trial_type, None))

    def _onsets_from_events(self, stop: int) -> None:
        """Start the listed trials whose baseline window begins before ``stop``."""
        first = min(self.window.t0, self.window.b0)
        while self._next_event < len(self.pending) and self.pending[self._next_event].sample + first < stop:
            e = self.pending[self._next_event]
            self._next_event += 1
            self._start(_Trial(int(e.sample), e.code, e.trial_type, e.image_id))

    def _decoded_type(self, trial_type: str | None) -> bool:
        types = self.decode_types
        return types is None or trial_type is None or trial_type in types

    def _start(self, trial: _Trial) -> None:
        if not self._decoded_type(trial.trial_type):
            self.n_ignored += 1
            return
        if trial.onset + min(self.window.t0, self.window.b0) < 0:
            self._skip(
                trial.onset, trial.code, SKIP_EDGE, "the window starts before the stream's first sample"
            )
            return
        if not self.epocher.available(trial.onset):  # a shift that reaches behind the ring buffer
            self._skip(trial.onset, trial.code, SKIP_EDGE, "the window starts before the buffered samples")
            return
        self.active.append(trial)

    def _touched(self, trial: _Trial) -> tuple[int, int, str] | None:
        lo, hi = trial.onset + min(self.window.t0, self.window.b0), trial.onset + self.window.t1 + 1
        for span in self.corrupt:
            if span[0] < hi and lo < span[1]:
                return span
        return None

    def _scaled(self, trial: _Trial, start: int, stop: int) -> np.ndarray:
        """Window samples ``start:stop`` as the training data saw them: baselined, scaled, clamped."""
        x = (self.epocher.samples(trial.onset, start, stop) - trial.baseline[:, None]).astype(np.float32)
        x = (x - self.center32) / self.scale32
        return np.clip(x, -self.clamp, self.clamp, out=x)

    def _advance(self, arrived: float) -> list[DecodedTrial]:
        w, seen = self.window, self.epocher.n_seen
        done: list[DecodedTrial] = []
        keep: list[_Trial] = []
        for trial in self.active:
            span = self._touched(trial)
            if span is not None:
                self._skip(
                    trial.onset, trial.code, span[2],
                    f"samples {span[0]}-{span[1]} (incl. {self.settle} settling) were "
                    f"{'NaN/inf' if span[2] == SKIP_NAN else 'missing'} in its window",
                )  # fmt: skip
                self._release(trial)
                continue
            if trial.onset + w.b1 >= seen:  # baseline not complete yet
                keep.append(trial)
                continue
            if trial.baseline is None:
                trial.baseline = self.epocher.baseline(trial.onset)
            n_avail = min(w.n_times, max(0, (seen - 1 - (trial.onset + w.t0)) // w.factor + 1))
            complete = n_avail == w.n_times
            if self.streaming:
                if trial.decoder is None:
                    trial.decoder = self._spare.pop() if self._spare else self._template.fork()
                heads = None
                pending = n_avail - trial.pushed
                bulk = w.n_times - self.push_lead
                if pending > 0 and (
                    complete
                    or (trial.pushed < bulk <= n_avail)
                    or (self.push_every and pending >= self.push_every)
                ):
                    x = self._scaled(trial, trial.pushed, n_avail)
                    heads = trial.decoder.push(torch.from_numpy(x))
                    trial.pushed = n_avail
                if not complete:
                    keep.append(trial)
                    continue
                self._release(trial)
            else:
                if not complete:
                    keep.append(trial)
                    continue
                with torch.inference_mode():
                    x = torch.from_numpy(self._scaled(trial, 0, w.n_times))[None]
                    heads = self._whole(x, heads=("clip",))
            latent = heads["clip"][0].float().numpy().copy()
            top = self.gallery.top(latent)
            done.append(
                DecodedTrial(
                    onset_sample=trial.onset,
                    code=trial.code,
                    trial_type=trial.trial_type,
                    image_id=trial.image_id,
                    latent=latent,
                    top5_index=tuple(int(i) for i in top),
                    top5_ids=tuple(self.gallery.image_ids[top].tolist()),
                    last_sample=trial.onset + w.t1,
                    t_last_sample_arrived=arrived,
                    t_top5_ready=time.perf_counter(),
                    t_filtered=self._t_filtered,
                )
            )
        self.active = keep
        horizon = seen - self.epocher.capacity  # corrupt spans no window can reach any more
        self.corrupt = [s for s in self.corrupt if s[1] > horizon]
        return done
