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
whose window (and ``settle_s`` after the bad samples) it touches, with the reason logged and counted,
and flags the trials decoded within the causal filter's settling time after it; NaN in the trigger
channel holds its last level (no phantom onset); a trigger code that is not in the study skips that
trial. Model channels missing from the stream are left out through the brain module's channel mask, up
to a stated fraction. More missing channels, or a stream at another rate, is an error at construction.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    # "" for a clean window; else the fault ("nan" or "gap") whose filter transient has not settled yet
    settling: str = ""

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


@dataclass(frozen=True)
class SubjectModel:
    """What the online decoder needs of a trained model for one subject (built from files by
    :func:`megdecode.online.build.load_subject_model`): the brain module and the subject's row in its
    subject layer, the preprocessing it was trained on, its channels (the order of ``channels.tsv``),
    the training-fitted robust scaler (``center``, ``scale``: one value per channel) and the rate of
    the training recordings (None: ``params.raw_sfreq``)."""

    brain: BrainModule
    subject_index: int
    params: PreprocessingParams
    channels: Sequence[str]
    center: np.ndarray
    scale: np.ndarray
    recorded_sfreq: float | None = None


@dataclass(frozen=True)
class OnlineSettings:
    """How an :class:`OnlineDecoder` finds onsets and runs; the defaults are the replay's.

    Onsets: ``stim_channel`` (a stream channel) with ``trigger_codes`` (trial type -> code), or an
    events list given to the decoder. ``photodiode_channel`` moves each trigger's onset to its first
    photodiode edge within ``photodiode_max_lag_s`` (``photodiode_threshold``: the edge level, as in the
    ``bids`` config); ``onset_shift`` (samples) is added to every trigger or photodiode onset. Trials of
    ``decode_types`` are decoded; other known types are ignored.

    Faults: trials whose window, plus ``settle_s``, touches NaN/inf or missing samples are skipped;
    trials decoded later but within the causal filter's settling time after such samples
    (``flag_settle_s``; None: the time after which the filter's impulse response keeps less than
    ``settle_tolerance`` of its absolute sum, 14 s for the default 0.1 Hz high-pass) are decoded and
    flagged (:attr:`DecodedTrial.settling`). Model channels absent from the stream or listed in
    ``bad_channels`` are left out through the brain module's channel mask (logged), up to
    ``max_missing_fraction`` of the model's channels; more is an error.

    Speed: ``streaming=False`` runs :class:`~megdecode.models.RealtimeDecoder` on each completed window
    instead of the streaming decoder (same outputs to ~1e-6). Streaming pushes: one bulk push when the
    window has all but ``push_lead`` decimated samples, the rest when its last sample arrives;
    ``push_every`` > 0 adds a push whenever that many samples wait. ``block``: most raw samples filtered
    at once. ``torch_threads``: the decoder sets torch's (process-wide) thread count to this when it is
    built (None: leave it); one thread is fastest for one trial at a time (docs/realtime.md).

    ``allow_zero_phase`` runs the causal front end for a model trained on zero-phase preprocessing (a
    logged mismatch) instead of refusing it. ``name`` prefixes log lines and errors.
    """

    stim_channel: str | None = None
    trigger_codes: Mapping[str, int] | None = None
    decode_types: tuple[str, ...] | None = ("exp", "test")
    onset_shift: int = 0
    photodiode_channel: str | None = None
    photodiode_max_lag_s: float = 0.1
    photodiode_threshold: float = 0.5
    settle_s: float = 1.0
    flag_settle_s: float | None = None
    settle_tolerance: float = 1e-3
    bad_channels: tuple[str, ...] = ()
    max_missing_fraction: float = 0.1
    streaming: bool = True
    push_lead: int = 6
    push_every: int = 0
    block: int = 4096
    torch_threads: int | None = 1
    allow_zero_phase: bool = False
    name: str = "stream"

    def replace(self, **changes: Any) -> OnlineSettings:
        return dataclasses.replace(self, **changes)


def settling_samples(sos: np.ndarray, tolerance: float, limit: int) -> int:
    """Samples after which the impulse response of the filter ``sos`` keeps less than ``tolerance`` of
    its absolute sum (a transient's effect on later outputs); at most ``limit``."""
    from scipy import signal

    impulse = np.zeros(limit)
    impulse[0] = 1.0
    tail = np.cumsum(np.abs(signal.sosfilt(sos, impulse))[::-1])[::-1]
    below = np.flatnonzero(tail <= tolerance * tail[0])
    return int(below[0]) if below.size else limit


def _online_params(params: PreprocessingParams, settings: OnlineSettings) -> PreprocessingParams:
    """The model's preprocessing, which must be causal (or zero-phase with ``allow_zero_phase``)."""
    if params.phase == "causal":
        return params
    if settings.allow_zero_phase:
        log.warning(
            "%s: model preprocessed with phase %r; the online front end is causal (inputs differ from "
            "training)", settings.name, params.phase,
        )  # fmt: skip
        return dataclasses.replace(params, phase="causal")
    raise ValueError(
        f"{settings.name}: the online decoder needs preprocessing.phase: causal (the model was preprocessed "
        f"with phase {params.phase!r}, which needs future samples); retrain with phase: causal, or allow "
        "the mismatch (allow_zero_phase, megdecode online --allow-zero-phase)"
    )


class OnlineDecoder:
    """One subject + backbone, decoding trials from raw chunks as they arrive (see the module docstring).

    ``stream_channels`` names the rows of every chunk (at ``raw_sfreq``); the model's channels are
    picked from them by name. ``settings``: :class:`OnlineSettings`. ``events``: onsets known in
    advance (instead of ``settings.stim_channel``). ``on_record`` is called with each
    :class:`DecodedTrial` as soon as it is decoded and each :class:`SkippedTrial` as soon as it is
    skipped, before the decoder goes on (a :class:`~megdecode.online.trial_log.TrialLog` writes them).
    """

    def __init__(
        self,
        model: SubjectModel,
        gallery: Gallery,
        raw_sfreq: float,
        stream_channels: Sequence[str],
        settings: OnlineSettings | None = None,
        *,
        events: Sequence[Event] | None = None,
        on_record: Callable[[DecodedTrial | SkippedTrial], None] | None = None,
    ) -> None:
        s = settings if settings is not None else OnlineSettings()
        self.settings, self.name, self.on_record = s, s.name, on_record
        if s.torch_threads is not None:
            torch.set_num_threads(int(s.torch_threads))
        self.params = _online_params(model.params, s)
        self.raw_sfreq = float(raw_sfreq)
        self._check_rate(model)
        self.window = causal_window(self.params, self.raw_sfreq, self.name)
        self._check_brain(model)
        position = {str(c): i for i, c in enumerate(stream_channels)}
        self.n_stream_channels = len(stream_channels)
        self.model_channels = [str(c) for c in model.channels]
        self.missing_channels = self._missing_channels(position)
        present = [c not in self.missing_channels for c in self.model_channels]
        self.present = np.flatnonzero(present)  # rows of the model's channels that are decoded
        self.mask = None if all(present) else torch.tensor(present)
        self.rows = np.array([position[self.model_channels[i]] for i in self.present])
        self._onset_sources(position, events)
        sos = causal_sos(self.params, self.raw_sfreq)
        self.epocher = CausalEpocher(sos, len(self.rows), self.window, s.block)
        self.settle = int(round(s.settle_s * self.raw_sfreq))
        self.flag_settle = (
            settling_samples(sos, s.settle_tolerance, int(120 * self.raw_sfreq))
            if s.flag_settle_s is None
            else int(round(s.flag_settle_s * self.raw_sfreq))
        )
        self.center32 = np.asarray(model.center, dtype=np.float32)[self.present, None]
        self.scale32 = np.asarray(model.scale, dtype=np.float32)[self.present, None]
        self.clamp = float(self.params.clamp)
        self.gallery = gallery
        self._brain(model)
        self.n_received = 0  # next expected sample counter
        self._t_filtered = float("nan")
        self._last_raw: np.ndarray | None = None  # last good raw sample (stream rows) for holding
        self._last_stim = 0
        self.active: list[_Trial] = []
        self.corrupt: list[tuple[int, int, str]] = []  # [start, stop) of bad samples, reason
        self.decoded: list[DecodedTrial] = []
        self.skipped: list[SkippedTrial] = []
        self.skip_counts: Counter[str] = Counter()
        self.n_ignored = 0  # onsets of trial types not decoded (catch)

    # ---- construction
    def _check_rate(self, model: SubjectModel) -> None:
        rate = model.recorded_sfreq if model.recorded_sfreq is not None else self.params.raw_sfreq
        if rate is not None and abs(self.raw_sfreq - float(rate)) > 1e-6:
            raise ValueError(
                f"{self.name}: stream sampled at {self.raw_sfreq} Hz but the model's recordings were at "
                f"{rate} Hz; resample the stream at the source or train on recordings at this rate"
            )

    def _check_brain(self, model: SubjectModel) -> None:
        brain = model.brain
        if len(model.channels) != brain.spatial.n_channels:
            raise ValueError(
                f"{self.name}: {len(model.channels)} model channels but the brain module has "
                f"{brain.spatial.n_channels}; pass the channels.tsv of the subject the model was trained on"
            )
        if brain.aggregate.n_times not in (0, self.window.n_times) and brain.aggregate.mode == "affine":
            raise ValueError(
                f"{self.name}: the brain module reads {brain.aggregate.n_times} samples, the preprocessing "
                f"window {self.window.n_times}; use the preprocessing config the model was trained with"
            )

    def _missing_channels(self, position: Mapping[str, int]) -> list[str]:
        """The model's channels left out (absent from the stream or bad); an error past the limit."""
        bad = set(self.settings.bad_channels)
        missing = [c for c in self.model_channels if c not in position or c in bad]
        if not missing:
            return []
        n, total, limit = len(missing), len(self.model_channels), self.settings.max_missing_fraction
        absent = [c for c in missing if c not in position]
        what = f"{len(absent)} absent from the stream, {n - len(absent)} listed as bad"
        if n > limit * total or n == total:
            raise ValueError(
                f"{self.name}: {n} of the model's {total} channels cannot be decoded ({what}; first: "
                f"{missing[:5]}), more than max_missing_fraction {limit:g} allows; stream the channels of "
                "the training recordings (channels.tsv), or raise the limit (--max-missing-channels)"
            )
        log.warning(
            "%s: decoding with %d of the model's %d channels: %d left out through the channel mask (%s: %s)",
            self.name, total - n, total, n, what, missing,
        )  # fmt: skip
        return missing

    def _onset_sources(self, position: Mapping[str, int], events: Sequence[Event] | None) -> None:
        s, name = self.settings, self.name
        if (s.stim_channel is None) == (events is None):
            raise ValueError(f"{name}: give either stim_channel (with trigger_codes) or events, not both")
        self.stim_row = None
        if s.stim_channel is not None:
            if s.stim_channel not in position:
                raise ValueError(
                    f"{name}: trigger channel {s.stim_channel!r} is not among the stream's channels"
                )
            if not s.trigger_codes:
                raise ValueError(f"{name}: reading triggers from {s.stim_channel!r} needs trigger_codes")
            self.stim_row = position[s.stim_channel]
        self.diode_row, self.diode = None, None
        if s.photodiode_channel is not None:
            if s.stim_channel is None:
                raise ValueError(f"{name}: photodiode_channel corrects trigger onsets: give stim_channel too")
            if s.photodiode_channel not in position:
                raise ValueError(
                    f"{name}: photodiode channel {s.photodiode_channel!r} is not among the stream's "
                    "channels; stream it, or set bids.photodiode_channel: null (onsets at the triggers)"
                )
            self.diode_row = position[s.photodiode_channel]
            self.diode = PhotodiodeOnsets(self.raw_sfreq, s.photodiode_max_lag_s, s.photodiode_threshold)
        self.type_of_code = {int(v): str(k) for k, v in (s.trigger_codes or {}).items()}
        self.decode_types = None if s.decode_types is None else set(s.decode_types)
        self.pending = sorted(events or [], key=lambda e: e.sample)
        self._next_event = 0
        self.onset_shift = int(s.onset_shift)

    def _brain(self, model: SubjectModel) -> None:
        s = self.settings
        self.brain = model.brain.eval()
        self.subject_index = int(model.subject_index)
        self.streaming = s.streaming
        self.push_lead = max(1, int(s.push_lead))
        self.push_every = max(0, int(s.push_every))
        # only the CLIP head ranks images: the MSE head is never computed online
        if s.streaming:
            self._template = StreamingDecoder(self.brain, self.subject_index, self.mask, heads=("clip",))
            self._spare: list[StreamingDecoder] = [self._template]  # free buffers
            self._whole = None
        else:
            self._template, self._spare = None, []
            self._whole = RealtimeDecoder(self.brain, self.subject_index, self.mask)

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
        skipped = SkippedTrial(int(onset), code, reason, detail)
        self.skipped.append(skipped)
        self.skip_counts[reason] += 1
        log.warning("%s: trial at sample %d skipped (%s): %s", self.name, onset, reason, detail)
        if self.on_record is not None:
            self.on_record(skipped)

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
        self.corrupt.append((start, start + n_missing, SKIP_GAP))
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
            self.corrupt.append((start + int(where[0]), start + int(where[-1]) + 1, SKIP_NAN))
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
        finite = np.isfinite(stim)
        if not finite.all():  # NaN holds the level before it: no phantom edge inside or after a pulse
            last = np.maximum.accumulate(np.where(finite, np.arange(len(stim)), -1))
            stim = np.where(last >= 0, stim[np.maximum(last, 0)], self._last_stim)
        stim = stim.round().astype(np.int64)
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

    def _touched(self, trial: _Trial, after: int) -> tuple[int, int, str] | None:
        """The first bad-sample span that ``trial``'s window touches, the span extended by ``after``."""
        lo, hi = trial.onset + min(self.window.t0, self.window.b0), trial.onset + self.window.t1 + 1
        for span in self.corrupt:
            if span[0] < hi and lo < span[1] + after:
                return span
        return None

    def _scaled(self, trial: _Trial, start: int, stop: int) -> np.ndarray:
        """Window samples ``start:stop`` as the training data saw them: baselined, scaled, clamped (the
        channels left out by the mask are zeros: the brain module gives them no weight)."""
        x = (self.epocher.samples(trial.onset, start, stop) - trial.baseline[:, None]).astype(np.float32)
        x = (x - self.center32) / self.scale32
        np.clip(x, -self.clamp, self.clamp, out=x)
        if self.mask is None:
            return x
        full = np.zeros((len(self.model_channels), x.shape[1]), dtype=np.float32)
        full[self.present] = x
        return full

    def _progress(self, trial: _Trial) -> dict[str, torch.Tensor] | None:
        """Push what has arrived of ``trial``'s window (streaming) or, once it is complete, run the whole
        window; the heads when the window is complete, else None."""
        w, seen = self.window, self.epocher.n_seen
        if trial.onset + w.b1 >= seen:  # baseline not complete yet
            return None
        if trial.baseline is None:
            trial.baseline = self.epocher.baseline(trial.onset)
        n_avail = min(w.n_times, max(0, (seen - 1 - (trial.onset + w.t0)) // w.factor + 1))
        complete = n_avail == w.n_times
        if not self.streaming:
            if not complete:
                return None
            with torch.inference_mode():
                x = torch.from_numpy(self._scaled(trial, 0, w.n_times))[None]
                return self._whole(x, heads=("clip",))
        if trial.decoder is None:
            trial.decoder = self._spare.pop() if self._spare else self._template.fork()
        heads = None
        pending = n_avail - trial.pushed
        bulk = w.n_times - self.push_lead
        if pending > 0 and (
            complete or (trial.pushed < bulk <= n_avail) or (self.push_every and pending >= self.push_every)
        ):
            heads = trial.decoder.push(torch.from_numpy(self._scaled(trial, trial.pushed, n_avail)))
            trial.pushed = n_avail
        if complete:
            self._release(trial)
        return heads if complete else None

    def _decoded(self, trial: _Trial, latent: np.ndarray, arrived: float) -> DecodedTrial:
        top = self.gallery.top(latent)
        settling = self._touched(trial, self.flag_settle)
        return DecodedTrial(
            onset_sample=trial.onset,
            code=trial.code,
            trial_type=trial.trial_type,
            image_id=trial.image_id,
            latent=latent,
            top5_index=tuple(int(i) for i in top),
            top5_ids=tuple(self.gallery.image_ids[top].tolist()),
            last_sample=trial.onset + self.window.t1,
            t_last_sample_arrived=arrived,
            t_top5_ready=time.perf_counter(),
            t_filtered=self._t_filtered,
            settling="" if settling is None else settling[2],
        )

    def _advance(self, arrived: float) -> list[DecodedTrial]:
        done: list[DecodedTrial] = []
        keep: list[_Trial] = []
        for trial in self.active:
            span = self._touched(trial, self.settle)
            if span is not None:
                self._skip(
                    trial.onset, trial.code, span[2],
                    f"samples {span[0]}-{span[1] - 1} were {'NaN/inf' if span[2] == SKIP_NAN else 'missing'} "
                    f"in its window or the {self.settle} samples before it (settle_s)",
                )  # fmt: skip
                self._release(trial)
                continue
            heads = self._progress(trial)
            if heads is None:  # window not complete
                keep.append(trial)
                continue
            decoded = self._decoded(trial, heads["clip"][0].float().numpy().copy(), arrived)
            done.append(decoded)
            if self.on_record is not None:
                self.on_record(decoded)
        self.active = keep
        # bad spans whose settling time ends before any window still to come
        horizon = self.epocher.n_seen - self.epocher.capacity - self.flag_settle
        self.corrupt = [s for s in self.corrupt if s[1] > horizon]
        return done
