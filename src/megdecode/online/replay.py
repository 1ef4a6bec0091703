"""Replay a subject's test runs from the BIDS recordings through the online decoder (rules/realtime.smk).

The decoder is built from the subject's online model (:mod:`megdecode.artifacts.online_model`), as the
``megdecode online`` command builds it. Each run is read block by block and fed in chunks of
``realtime.chunk_samples`` samples, as fast as possible (or paced at the recording's rate). Every trial
is appended to a per-trial log (:class:`~megdecode.online.trial_log.TrialLog`: on disk before the next
trial is decoded), so a run that fails keeps every trial before it. At the end, in ``Layout.realtime``:

- ``trials.tsv``: one row per image trial (decoded or skipped), in time order: onset, image, top-5,
  latency, the filter-settling flag, and for trials of the large test set the offline prediction's
  top-5 hit and the online-offline difference;
- ``summary.tsv`` (``metric value note``, rounded): backbone, phase, latency p50/p95/p99, throughput
  (x real time), skips per reason, online top-5 accuracy on the gallery's images and its chance level,
  online vs offline top-5 accuracy on the same trials, their largest relative difference;
- ``replay.png``: :func:`megdecode.online.replay_figure.replay_figure`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.config import dataclass_from_section
from megdecode.io import read_tsv, write_tsv
from megdecode.online.decoder import DecodedTrial, Event, Gallery, OnlineDecoder, SkippedTrial
from megdecode.online.trial_log import TrialLog

log = logging.getLogger(__name__)

TRIALS, SUMMARY, FIGURE = "trials.tsv", "summary.tsv", "replay.png"
TRIAL_COLUMNS = [
    "subject", "session", "run", "onset_sample", "trial_type", "image_id", "status", "skip_reason",
    "top1", "top5", "online_top5_hit", "latency_ms", "settling", "offline_top5_hit",
    "online_offline_rel_diff",
]  # fmt: skip
PHASE_WARNING = (
    "MODEL TRAINED ON preprocessing.phase: zero (zero-phase filters that need future samples); the online "
    "front end is causal, so online inputs differ from the training inputs and online != offline "
    "predictions. Set preprocessing.phase: causal to train on what the online decoder sees."
)
IMAGE_MATCH_S = 0.1  # trigger onsets: the listed event within this many seconds names the image


@dataclasses.dataclass(frozen=True)
class ReplaySettings:
    """The ``realtime`` config section (realtime.schema.yaml)."""

    enabled: bool
    backbone: str | None
    seed: int | None
    gallery: str
    chunk_samples: int
    streaming: bool
    push_lead: int
    push_every: int
    pace: bool
    onsets: str
    settle_s: float
    max_runs: int | None
    timeline_s: float

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ReplaySettings:
        return dataclass_from_section(cls, dict(cfg), "realtime")


@dataclasses.dataclass(frozen=True)
class ReplayInputs:
    """The files a subject's replay reads."""

    raw_paths: Sequence[Path | str]
    events_paths: Sequence[Path | str]
    stimuli: Path | str  # the stimulus table
    images_root: Path | str  # the folder its ``file`` column is relative to
    online_model: Path | str  # the subject's online model folder
    predictions: Path | str  # the training job's predictions.npz (offline comparison)
    preprocessed_trials: Path | str  # the preprocessed subject's trials.tsv (rows of the predictions)


def _entities(path: Path | str) -> dict[str, str]:
    return dict(p.split("-", 1) for p in Path(path).name.split("_") if "-" in p)


def runs_with_test_images(
    raw_paths: Sequence[Path | str],
    events_paths: Sequence[Path | str],
    stimuli: pd.DataFrame,
    max_runs: int | None,
) -> list[tuple[Path, Path]]:
    """The runs with at least one image of a test concept (in the given order), at most ``max_runs``."""
    test_values = set(stimuli.loc[stimuli["concept_split"] == "test", "value"].dropna().astype(int))
    runs = []
    for raw, events in zip(raw_paths, events_paths, strict=True):
        values = pd.to_numeric(read_tsv(events)["value"], errors="coerce").dropna().astype(int)
        if test_values & set(values):
            runs.append((Path(raw), Path(events)))
    return runs[:max_runs] if max_runs is not None else runs


def recording_chunks(
    raw, chunk: int, pace: bool, block_s: float = 10.0, stop: int | None = None
) -> Iterator[tuple[np.ndarray, int]]:
    """``(chunk, first_sample)`` of an mne Raw's first ``stop`` samples (all by default), read
    ``block_s`` seconds at a time; with ``pace``, each chunk when its last sample would have been
    recorded (counted from the first call)."""
    sfreq = float(raw.info["sfreq"])
    n = raw.n_times if stop is None else min(stop, raw.n_times)
    step = max(chunk, int(block_s * sfreq) // chunk * chunk)
    start = time.perf_counter()
    for a in range(0, n, step):
        data = raw.get_data(start=a, stop=min(n, a + step))
        for b in range(0, data.shape[1], chunk):
            if pace:
                due = start + (a + b + min(chunk, data.shape[1] - b)) / sfreq
                time.sleep(max(0.0, due - time.perf_counter()))
            yield data[:, b : b + chunk], a + b


def replay_run(decoder, raw, chunk: int, pace: bool, block_s: float = 10.0) -> dict[str, float]:
    """Feed ``raw`` (an mne Raw) to ``decoder`` in chunks; returns feed time and stream duration (s)."""
    feed_s, start = 0.0, time.perf_counter()
    for data, first in recording_chunks(raw, chunk, pace, block_s):
        tic = time.perf_counter()
        decoder.feed(data, first_sample=first)
        feed_s += time.perf_counter() - tic
    decoder.close()
    return {
        "feed_s": feed_s,
        "wall_s": time.perf_counter() - start,
        "stream_s": raw.n_times / raw.info["sfreq"],
    }


class OfflineComparison:
    """The training job's offline CLIP-head predictions of the large test set, matched to replayed trials
    by (session, run, k-th occurrence of the image in the run)."""

    def __init__(self, trials_path: Path | str, predictions_path: Path | str, gallery: Gallery) -> None:
        from megdecode.artifacts.predictions import read_predictions

        predictions = read_predictions(predictions_path)
        self.clip = predictions.heads.get("clip", {}).get("test_large")
        self.gallery = gallery
        from megdecode.artifacts.preprocessed import read_trials

        trials = read_trials(Path(trials_path).parent)
        large = trials[trials["split"] == "test_large"].reset_index(drop=True)
        ids = predictions.image_ids.get("test_large", np.array([]))
        if len(ids) != len(large) or not (large["image_id"].astype(str).to_numpy() == ids).all():
            log.warning("test_large rows of %s and %s differ; no online/offline comparison", trials_path,
                        predictions_path)  # fmt: skip
            large = large.iloc[0:0]
        large = large.assign(pred_row=np.arange(len(large)))
        large["k"] = large.groupby(["session", "run", "image_id"]).cumcount()
        self.rows = {
            (str(s), str(r), str(i), int(k)): int(p)
            for s, r, i, k, p in large[["session", "run", "image_id", "k", "pred_row"]].itertuples(
                index=False
            )
        }

    def compare(self, session: str, run: str, image: str, k: int, latent: np.ndarray) -> dict[str, float]:
        """``offline_top5_hit`` and ``online_offline_rel_diff`` of the k-th trial of ``image`` in the run
        (empty when it is not a large-test-set trial)."""
        row = self.rows.get((session, run, image, k))
        if row is None or self.clip is None:
            return {}
        ref = np.asarray(self.clip[row], dtype=np.float64).reshape(-1)
        top = self.gallery.image_ids[self.gallery.top(ref)]
        return {
            "offline_top5_hit": float(image in set(top)),
            "online_offline_rel_diff": _sig(
                float(np.linalg.norm(latent - ref) / max(np.linalg.norm(ref), 1e-30)), 3
            ),
        }


class ListedEvents:
    """The listed events of a run (``sample``, ``trial_type``, ``image_id``): which one a decoded trial's
    onset is (the nearest within ``IMAGE_MATCH_S``: trigger onsets can differ from the listed samples)."""

    def __init__(self, events: pd.DataFrame, sfreq: float) -> None:
        self.samples = events["sample"].to_numpy(np.int64)
        self.types = (
            events["trial_type"].astype(str).tolist() if "trial_type" in events else [None] * len(events)
        )
        images = events["image_id"] if "image_id" in events else [None] * len(events)
        self.images = [None if pd.isna(i) else str(i) for i in images]
        self.tolerance = IMAGE_MATCH_S * sfreq

    def at(self, onset: int) -> tuple[str | None, str | None]:
        """(trial type, image id) of the listed event nearest ``onset``, or (None, None)."""
        if not len(self.samples):
            return None, None
        i = int(np.argmin(np.abs(self.samples - onset)))
        if abs(int(self.samples[i]) - onset) > self.tolerance:
            return None, None
        return self.types[i], self.images[i]


class RunRecorder:
    """The ``on_record`` hook of one replayed run: each decoded or skipped trial becomes a row of
    :data:`TRIAL_COLUMNS`, written to the trial log before the decoder goes on."""

    def __init__(
        self,
        subject: str,
        stem: str,
        events: pd.DataFrame,
        sfreq: float,
        gallery: Gallery,
        offline: OfflineComparison,
        trial_log: TrialLog,
    ) -> None:
        ent = _entities(stem)
        self.base = {"subject": subject, "session": ent.get("ses"), "run": ent.get("run")}
        self.listed = ListedEvents(events, sfreq)
        self.in_gallery = set(gallery.image_ids)
        self.offline = offline
        self.trial_log = trial_log
        self.seen: Counter[str] = Counter()  # occurrences of each image decoded so far in the run
        self.rows: list[dict[str, Any]] = []

    def __call__(self, record: DecodedTrial | SkippedTrial) -> None:
        row = self._decoded(record) if isinstance(record, DecodedTrial) else self._skipped(record)
        self.trial_log.write(row)
        self.rows.append(row)

    def _decoded(self, trial: DecodedTrial) -> dict[str, Any]:
        trial_type, image = self.listed.at(trial.onset_sample)
        image = trial.image_id or image
        row = {
            **self.base, "onset_sample": trial.onset_sample, "trial_type": trial.trial_type or trial_type,
            "image_id": image, "status": "decoded", "skip_reason": "", "top1": trial.top5_ids[0],
            "top5": ",".join(trial.top5_ids),
            "online_top5_hit": float(image in trial.top5_ids) if image in self.in_gallery else np.nan,
            "latency_ms": round(1e3 * trial.latency_s, 3), "settling": trial.settling,
        }  # fmt: skip
        if image is not None:
            k = self.seen[image]
            self.seen[image] += 1
            row |= self.offline.compare(self.base["session"], self.base["run"], image, k, trial.latent)
        return row

    def _skipped(self, skip: SkippedTrial) -> dict[str, Any]:
        trial_type, image = self.listed.at(skip.onset_sample)
        return {
            **self.base, "onset_sample": skip.onset_sample, "trial_type": trial_type, "image_id": image,
            "status": "skipped", "skip_reason": f"{skip.reason}: {skip.detail}",
        }  # fmt: skip


@dataclasses.dataclass
class RunResult:
    rows: list[dict[str, Any]]
    stats: Counter[str]
    stem: str
    sfreq: float
    events: pd.DataFrame
    decoded: list[DecodedTrial]


def replay_one_run(
    online,
    raw_path: Path,
    events_path: Path,
    stimuli: pd.DataFrame,
    settings: ReplaySettings,
    offline: OfflineComparison,
    trial_log: TrialLog,
) -> RunResult:
    """Replay one run through a decoder built from the online model ``online``; rows go to ``trial_log``
    as they come."""
    from megdecode.preprocessing.reader import attach_stimuli, open_raw, read_events, run_stem

    stem = run_stem(raw_path)
    raw = open_raw(raw_path, stem)
    sfreq = float(raw.info["sfreq"])
    params = online.subject_model.params
    events = attach_stimuli(read_events(events_path, sfreq, stem, params.trial_types), stimuli, stem)
    recorder = RunRecorder(online.subject, stem, events, sfreq, online.gallery, offline, trial_log)
    run_settings = online.settings(
        name=stem, settle_s=settings.settle_s, streaming=settings.streaming, push_lead=settings.push_lead,
        push_every=settings.push_every, allow_zero_phase=True,
    )  # fmt: skip
    listed = None
    if settings.onsets == "events":  # the photodiode-corrected samples the offline chain used
        run_settings = run_settings.replace(stim_channel=None, trigger_codes=None, photodiode_channel=None)
        listed = [
            Event(int(s), str(t), None if pd.isna(i) else str(i))
            for s, t, i in zip(events["sample"], events["trial_type"], events["image_id"], strict=True)
        ]
    decoder = OnlineDecoder(
        online.subject_model, online.gallery, sfreq, raw.ch_names, run_settings, events=listed,
        on_record=recorder,
    )  # fmt: skip
    stats = Counter(replay_run(decoder, raw, settings.chunk_samples, settings.pace))
    stats["runs"] += 1
    for reason, n in decoder.skip_counts.items():
        stats[f"skipped_{reason}"] += n
    return RunResult(recorder.rows, stats, stem, sfreq, events, list(decoder.decoded))


def replay_subject(
    inputs: ReplayInputs, settings: ReplaySettings, out_dir: Path | str, trial_log: Path | str
) -> pd.DataFrame:
    """Replay the subject's test runs; write trials.tsv, summary.tsv and replay.png in ``out_dir``, and
    every trial, as it comes, to ``trial_log`` (started afresh)."""
    from megdecode.artifacts.online_model import read_online_model
    from megdecode.artifacts.stimuli import read_stimuli
    from megdecode.online.replay_figure import replay_figure

    online = read_online_model(inputs.online_model)
    if online.phase != "causal":
        log.warning(PHASE_WARNING)
    stimuli = read_stimuli(inputs.stimuli)
    offline = OfflineComparison(inputs.preprocessed_trials, inputs.predictions, online.gallery)
    runs = runs_with_test_images(inputs.raw_paths, inputs.events_paths, stimuli, settings.max_runs)
    if not runs:
        raise ValueError(
            f"sub-{online.subject}: no run with test-concept images among {len(inputs.raw_paths)}"
        )
    results: list[RunResult] = []
    with TrialLog(trial_log, TRIAL_COLUMNS, mode="truncate") as written:
        for raw_path, events_path in runs:
            try:
                results.append(
                    replay_one_run(
                        online,
                        raw_path,
                        events_path,
                        stimuli.reset_index(drop=True),
                        settings,
                        offline,
                        written,
                    )
                )
            except Exception as err:
                err.add_note(f"the {written.n_rows} trials decoded or skipped before it are in {trial_log}")
                raise
    rows = [row for result in results for row in result.rows]
    table = pd.DataFrame(rows, columns=TRIAL_COLUMNS).sort_values(
        ["session", "run", "onset_sample"], kind="stable", ignore_index=True
    )
    stats = sum((result.stats for result in results), Counter())
    out_dir = Path(out_dir)
    write_tsv(table, out_dir / TRIALS)
    summary = summarise(table, stats, settings, online)
    write_tsv(summary, out_dir / SUMMARY)
    replay_figure(
        table, summary, results[0], stimuli, Path(inputs.images_root), settings.timeline_s, online,
        out_dir / FIGURE,
    )  # fmt: skip
    return summary


def _sig(value: float, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant digits (NaN stays NaN)."""
    return float(f"{value:.{digits}g}") if np.isfinite(value) else float("nan")


def summarise(
    table: pd.DataFrame, stats: Mapping[str, float], settings: ReplaySettings, online
) -> pd.DataFrame:
    """The summary table (``metric value note``), values rounded to what they can tell."""
    decoded = table[table["status"] == "decoded"]
    lat = decoded["latency_ms"].to_numpy(float)
    both = decoded.dropna(subset=["offline_top5_hit", "online_top5_hit"])
    rel = decoded["online_offline_rel_diff"].dropna()
    feed, stream = stats.get("feed_s", 0.0), stats.get("stream_s", 0.0)
    n_gallery = len(online.gallery)
    rows: list[tuple[str, Any, str]] = []

    def add(metric: str, value: Any, note: str = "") -> None:
        rows.append((metric, value, note))

    def share(column: str, frame: pd.DataFrame) -> float:
        values = frame[column].dropna()
        return round(float(values.mean()), 3) if len(values) else float("nan")

    phase = online.phase
    add("phase", phase, PHASE_WARNING if phase != "causal" else "models trained on the causal front end")
    add("backbone", online.backbone, f"brain module, seed {online.seed}")
    add("runs_replayed", stats.get("runs", 0), f"chunks of {settings.chunk_samples} samples")
    add("onsets", settings.onsets, "events: events.tsv sample; trigger: stim channel edges + photodiode")
    add("trials_decoded", len(decoded))
    add("trials_skipped", int((table["status"] == "skipped").sum()), "reasons in trials.tsv skip_reason")
    for key, value in sorted(stats.items()):
        if key.startswith("skipped_"):
            add(key, value)
    add(
        "trials_settling",
        int((decoded["settling"].fillna("") != "").sum()),
        "decoded inside the filter's settling time after NaN/gaps",
    )
    for q in (50, 95, 99):
        note = "last needed sample arrived -> top-5 ready (perf_counter), one torch thread"
        add(f"latency_ms_p{q}", round(float(np.percentile(lat, q)), 2) if lat.size else np.nan, note)
    add("latency_ms_max", round(float(lat.max()), 2) if lat.size else np.nan)
    paced = " (paced at the real rate)" if settings.pace else ""
    add(
        "throughput_x_realtime",
        round(stream / feed, 1) if feed else np.nan,
        "stream s / s spent in feed()" + paced,
    )
    add(
        "wall_x_realtime",
        round(stream / max(stats.get("wall_s", 0.0), 1e-9), 1),
        "including reading the recording",
    )
    add("gallery_size", n_gallery, settings.gallery)
    in_gallery = decoded.dropna(subset=["online_top5_hit"])
    add(
        "n_gallery_trials", len(in_gallery), "decoded trials whose seen image is in the gallery (test images)"
    )
    add("online_top5_acc", share("online_top5_hit", in_gallery), "those trials")
    add("chance_top5", round(min(5, n_gallery) / n_gallery, 4), "5 / gallery_size: ranking at random")
    add("n_compared_offline", len(both), "test_large trials matched to predictions.npz")
    add("online_top5_acc_compared", share("online_top5_hit", both), "the same trials")
    add(
        "offline_top5_acc_compared",
        share("offline_top5_hit", both),
        "predictions.npz CLIP head, same gallery",
    )
    add(
        "online_offline_max_rel_diff",
        _sig(float(rel.max())) if len(rel) else np.nan,
        "||online - offline|| / ||offline|| of the CLIP-head latent",
    )
    return pd.DataFrame(rows, columns=["metric", "value", "note"])
