"""Replay a subject's test runs from the BIDS recordings through the online decoder (rules/realtime.smk).

Each run is read block by block and fed in chunks of ``realtime.chunk_samples`` samples, as fast as
possible (or paced at the recording's rate). Outputs, in ``Layout.realtime``:

- ``trials.tsv``: one row per image trial (decoded or skipped): onset, image, top-5, latency, and for
  trials of the large test set the offline prediction's top-5 hit and the online-offline difference;
- ``summary.tsv`` (``metric value note``): latency p50/p95/p99, throughput (x real time), skips per
  reason, online vs offline top-5 accuracy on the same trials, their largest relative difference;
- ``replay.png``: latency distribution and a timeline strip (triggers, decoded top-1 thumbnails).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.sourcedata import read_ground_truth
from megdecode.artifacts.stimuli import read_image
from megdecode.config import dataclass_from_section
from megdecode.io import atomic_output, read_tsv, write_tsv

log = logging.getLogger(__name__)

TRIALS, SUMMARY, FIGURE = "trials.tsv", "summary.tsv", "replay.png"
TRIAL_COLUMNS = [
    "subject", "session", "run", "onset_sample", "trial_type", "image_id", "status", "skip_reason",
    "top1", "top5", "online_top5_hit", "latency_ms", "offline_top5_hit", "online_offline_rel_diff",
]  # fmt: skip
PHASE_WARNING = (
    "MODEL TRAINED ON preprocessing.phase: zero (zero-phase filters that need future samples); the online "
    "front end is causal, so online inputs differ from the training inputs and online != offline "
    "predictions. Set preprocessing.phase: causal to train on what the online decoder sees."
)


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


def _entities(path: Path | str) -> dict[str, str]:
    return dict(p.split("-", 1) for p in Path(path).name.split("_") if "-" in p)


def test_runs(
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


def replay_run(decoder, raw, chunk: int, pace: bool, block_s: float = 10.0) -> dict[str, float]:
    """Feed ``raw`` (an mne Raw) to ``decoder`` in chunks; returns feed time and stream duration (s)."""
    sfreq, n = float(raw.info["sfreq"]), raw.n_times
    step = max(chunk, int(block_s * sfreq) // chunk * chunk)
    feed_s, start = 0.0, time.perf_counter()
    for a in range(0, n, step):
        data = raw.get_data(start=a, stop=min(n, a + step))
        for b in range(0, data.shape[1], chunk):
            if pace:  # wait until the chunk's last sample would have been recorded
                due = start + (a + b + min(chunk, data.shape[1] - b)) / sfreq
                time.sleep(max(0.0, due - time.perf_counter()))
            tic = time.perf_counter()
            decoder.feed(data[:, b : b + chunk], first_sample=a + b)
            feed_s += time.perf_counter() - tic
    decoder.close()
    return {"feed_s": feed_s, "wall_s": time.perf_counter() - start, "stream_s": n / sfreq}


def _offline_rows(preprocessed_dir: Path | str, predictions) -> pd.DataFrame:
    """test_large rows of trials.tsv with their offline CLIP prediction's row (session, run, k-th
    occurrence of the image in the run)."""
    from megdecode.artifacts.preprocessed import read_trials

    trials = read_trials(preprocessed_dir)
    large = trials[trials["split"] == "test_large"].reset_index(drop=True)
    ids = predictions.image_ids.get("test_large", np.array([]))
    if len(ids) != len(large) or not (large["image_id"].astype(str).to_numpy() == ids).all():
        log.warning("test_large rows of trials.tsv and predictions.npz differ; no online/offline comparison")
        return large.iloc[0:0].assign(pred_row=[])
    large["pred_row"] = np.arange(len(large))
    large["session"], large["run"] = large["session"].astype(str), large["run"].astype(str)
    large["k"] = large.groupby(["session", "run", "image_id"]).cumcount()
    return large


def replay_subject(
    raw_paths: Sequence[Path | str],
    events_paths: Sequence[Path | str],
    stimuli_path: Path | str,
    images_root: Path | str,
    model_path: Path | str,
    preprocessed_dir: Path | str,
    predictions_path: Path | str,
    latents_dir: Path | str,
    subject: str,
    settings: ReplaySettings,
    bids_cfg: Mapping[str, Any],
    out_dir: Path | str,
    ground_truth: Path | str | None = None,
) -> pd.DataFrame:
    """Replay the subject's test runs; write trials.tsv, summary.tsv and replay.png in ``out_dir``."""
    import torch

    from megdecode.artifacts.predictions import read_predictions
    from megdecode.artifacts.stimuli import read_stimuli
    from megdecode.online.build import gallery_from_files, load_online_decoder, preprocessing_of
    from megdecode.online.decoder import Event
    from megdecode.preprocessing.reader import attach_stimuli, open_raw, read_events, run_stem

    torch.set_num_threads(1)  # one trial at a time: one core (docs/realtime.md)
    stimuli = read_stimuli(stimuli_path)
    params, _, _ = preprocessing_of(preprocessed_dir)
    zero_phase = params.phase != "causal"
    if zero_phase:
        log.warning(PHASE_WARNING)
    gallery = gallery_from_files(predictions_path, latents_dir, settings.gallery)
    predictions = read_predictions(predictions_path)
    offline = _offline_rows(preprocessed_dir, predictions)
    offline_clip = predictions.heads.get("clip", {}).get("test_large")
    runs = test_runs(raw_paths, events_paths, stimuli, settings.max_runs)
    if not runs:
        raise ValueError(f"sub-{subject}: no run with test-concept images among {len(raw_paths)} runs")
    codes = None
    if settings.onsets == "trigger":
        codes = bids_cfg.get("trigger_codes")
        if codes is None and ground_truth is not None:  # the simulator's codes
            codes = read_ground_truth(ground_truth).get("trigger_codes")
        if not codes:
            raise ValueError("realtime.onsets: trigger needs bids.trigger_codes (trial type -> code)")
    rows, stats, timeline = [], Counter(), None
    for raw_path, events_path in runs:
        stem = run_stem(raw_path)
        ent = _entities(stem)
        raw = open_raw(raw_path, stem)
        sfreq = float(raw.info["sfreq"])
        events = read_events(events_path, sfreq, stem, params.trial_types)
        events = attach_stimuli(events, stimuli.reset_index(drop=True), stem)
        listed = [
            Event(int(s), str(t), None if pd.isna(i) else str(i))
            for s, t, i in zip(events["sample"], events["trial_type"], events["image_id"], strict=True)
        ]
        options: dict[str, Any] = {
            "settle_s": settings.settle_s,
            "name": stem,
            "streaming": settings.streaming,
            "push_lead": settings.push_lead,
            "push_every": settings.push_every,
        }
        if settings.onsets == "events":
            options["events"] = listed
        else:
            options.update(stim_channel=bids_cfg["stim_channel"], trigger_codes=codes)
            if bids_cfg.get("photodiode_channel") is not None:  # the offline conversion's correction
                options.update(
                    photodiode_channel=bids_cfg["photodiode_channel"],
                    photodiode_max_lag_s=bids_cfg["photodiode_max_lag_s"],
                    photodiode_threshold=bids_cfg["photodiode_threshold"],
                )
        decoder = load_online_decoder(
            model_path, preprocessed_dir, gallery, subject, sfreq, raw.ch_names,
            allow_zero_phase=zero_phase, **options,
        )  # fmt: skip
        run_stats = replay_run(decoder, raw, settings.chunk_samples, settings.pace)
        for k, v in run_stats.items():
            stats[k] += v
        stats["runs"] += 1
        for reason, n in decoder.skip_counts.items():
            stats[f"skipped_{reason}"] += n
        image_of = {e.sample: e.image_id for e in listed}  # trigger mode: the listed image nearest in time
        rows += _trial_rows(decoder, subject, ent, image_of, sfreq, offline, offline_clip)
        if timeline is None:
            timeline = {"stem": stem, "sfreq": sfreq, "events": events, "decoded": list(decoder.decoded)}
    table = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    out_dir = Path(out_dir)
    write_tsv(table, out_dir / TRIALS)
    summary = summarise(table, stats, settings, params.phase, len(gallery))
    write_tsv(summary, out_dir / SUMMARY)
    replay_figure(table, timeline, stimuli, Path(images_root), settings, out_dir / FIGURE, subject)
    return summary


def _trial_rows(decoder, subject, ent, image_of, sfreq, offline, offline_clip) -> list[dict[str, Any]]:
    listed = np.array(sorted(image_of))
    counts: Counter[str] = Counter()
    here = offline[(offline["session"] == ent.get("ses")) & (offline["run"] == ent.get("run"))]
    rows = []
    for trial in decoder.decoded:
        image = trial.image_id
        if image is None and len(listed):  # trigger onsets: the listed event within 0.1 s
            near = listed[np.argmin(np.abs(listed - trial.onset_sample))]
            image = image_of[near] if abs(near - trial.onset_sample) <= 0.1 * sfreq else None
        in_gallery = image in set(decoder.gallery.image_ids)
        row = {
            "subject": subject, "session": ent.get("ses"), "run": ent.get("run"),
            "onset_sample": trial.onset_sample, "trial_type": trial.trial_type, "image_id": image,
            "status": "decoded", "skip_reason": "", "top1": trial.top5_ids[0],
            "top5": ",".join(trial.top5_ids),
            "online_top5_hit": float(image in trial.top5_ids) if in_gallery else np.nan,
            "latency_ms": 1e3 * trial.latency_s, "offline_top5_hit": np.nan,
            "online_offline_rel_diff": np.nan,
        }  # fmt: skip
        if image is not None and offline_clip is not None:
            k = counts[image]
            counts[image] += 1
            match = here[(here["image_id"] == image) & (here["k"] == k)]
            if len(match):
                ref = np.asarray(offline_clip[int(match["pred_row"].iloc[0])], dtype=np.float64).reshape(-1)
                top = decoder.gallery.image_ids[decoder.gallery.top(ref)]
                row["offline_top5_hit"] = float(image in set(top))
                row["online_offline_rel_diff"] = float(
                    np.linalg.norm(trial.latent - ref) / max(np.linalg.norm(ref), 1e-30)
                )
        rows.append(row)
    for skip in decoder.skipped:
        image = image_of.get(skip.onset_sample)
        rows.append(
            {
                "subject": subject,
                "session": ent.get("ses"),
                "run": ent.get("run"),
                "onset_sample": skip.onset_sample,
                "trial_type": None,
                "image_id": image,
                "status": "skipped",
                "skip_reason": f"{skip.reason}: {skip.detail}",
                "top1": "",
                "top5": "",
                "online_top5_hit": np.nan,
                "latency_ms": np.nan,
                "offline_top5_hit": np.nan,
                "online_offline_rel_diff": np.nan,
            }  # fmt: skip
        )
    return sorted(rows, key=lambda r: r["onset_sample"])


def summarise(table: pd.DataFrame, stats: Mapping[str, float], settings, phase: str, gallery_size: int):
    """The summary table (``metric value note``)."""
    decoded = table[table["status"] == "decoded"]
    lat = decoded["latency_ms"].to_numpy(float)
    both = decoded.dropna(subset=["offline_top5_hit", "online_top5_hit"])
    rel = decoded["online_offline_rel_diff"].dropna()
    feed, stream = stats.get("feed_s", 0.0), stats.get("stream_s", 0.0)
    rows: list[tuple[str, Any, str]] = []

    def add(metric: str, value: Any, note: str = "") -> None:
        rows.append((metric, value, note))

    add("phase", phase, PHASE_WARNING if phase != "causal" else "models trained on the causal front end")
    add("runs_replayed", stats.get("runs", 0), f"chunks of {settings.chunk_samples} samples")
    add("onsets", settings.onsets, "events: events.tsv sample; trigger: stim channel edges")
    add("trials_decoded", len(decoded))
    add("trials_skipped", int((table["status"] == "skipped").sum()), "reasons in trials.tsv skip_reason")
    for key, value in sorted(stats.items()):
        if key.startswith("skipped_"):
            add(key, value)
    for q in (50, 95, 99):
        note = "last needed sample arrived -> top-5 ready (perf_counter), one torch thread"
        add(f"latency_ms_p{q}", float(np.percentile(lat, q)) if lat.size else np.nan, note)
    add("latency_ms_max", float(lat.max()) if lat.size else np.nan)
    add("gallery_size", gallery_size, settings.gallery)
    paced = " (paced at the real rate)" if settings.pace else ""
    add("throughput_x_realtime", stream / feed if feed else np.nan, "stream s / s spent in feed()" + paced)
    add("wall_x_realtime", stream / max(stats.get("wall_s", 0.0), 1e-9), "including reading the recording")
    add(
        "online_top5_acc",
        float(decoded["online_top5_hit"].mean()),
        "decoded trials with the image in the gallery",
    )
    add("n_compared_offline", len(both), "test_large trials matched to predictions.npz")
    mean = (lambda col: float(both[col].mean())) if len(both) else (lambda col: np.nan)
    add("online_top5_acc_compared", mean("online_top5_hit"), "the same trials")
    add("offline_top5_acc_compared", mean("offline_top5_hit"), "predictions.npz CLIP head, same gallery")
    add(
        "online_offline_max_rel_diff",
        float(rel.max()) if len(rel) else np.nan,
        "||online - offline|| / ||offline|| of the CLIP-head latent",
    )
    return pd.DataFrame(rows, columns=["metric", "value", "note"])


def replay_figure(table, timeline, stimuli, images_root: Path, settings, out: Path, subject: str) -> None:
    """Latency histogram + a timeline strip of the first replayed run with decoded top-1 thumbnails."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    lat = table.loc[table["status"] == "decoded", "latency_ms"].to_numpy(float)
    fig, (ax_lat, ax_time) = plt.subplots(2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [1, 1.3]})
    if lat.size:
        ax_lat.hist(lat, bins=40, color="C0")
        for q, ls in ((50, "-"), (95, "--"), (99, ":")):
            v = np.percentile(lat, q)
            ax_lat.axvline(v, color="k", ls=ls, lw=1, label=f"p{q} {v:.2f} ms")
        ax_lat.legend(fontsize="small")
    ax_lat.set(xlabel="latency: last needed sample -> top-5 (ms)", ylabel="trials",
               title=f"sub-{subject}: online replay, {len(lat)} trials decoded")  # fmt: skip
    if timeline is not None:
        sfreq, span = timeline["sfreq"], settings.timeline_s
        ev = timeline["events"]
        ev = ev[ev["sample"] / sfreq <= span]
        colours = {"exp": "C0", "test": "C1", "catch": "C7"}
        for s, t in zip(ev["sample"], ev["trial_type"], strict=True):
            ax_time.axvline(s / sfreq, color=colours.get(t, "C3"), lw=1)
        files = stimuli["file"].to_dict()
        for trial in timeline["decoded"]:
            x = (trial.last_sample + 1) / sfreq
            if x > span:
                break
            ax_time.plot([trial.onset_sample / sfreq, x], [0.2, 0.2], color="C2", lw=2)
            path = images_root / str(files.get(trial.top5_ids[0], ""))
            if path.is_file():
                thumb = np.asarray(read_image(path).resize((48, 48)))
                ax_time.add_artist(AnnotationBbox(OffsetImage(thumb, zoom=0.6), (x, 0.6), frameon=False))
        ax_time.set(xlim=(0, span), ylim=(0, 1), yticks=[], xlabel=f"{timeline['stem']}: time (s)",
                    title="image onsets (blue exp, orange test, grey catch); green: onset -> window end; "
                    "top-1 image drawn when decoded")  # fmt: skip
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png", metadata={"Software": None})
    plt.close(fig)
