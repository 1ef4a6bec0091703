"""``replay.png`` of the online replay: what was seen, what the decoder retrieved, how fast.

Three panels: the latency histogram (p50/p95/p99); a timeline of the first replayed run (image onsets by
trial type, each decoded window, and a hit or miss mark for each trial whose seen image is in the
gallery); and the first decoded gallery trials, one per column: the seen image above the top-5 retrieved,
a retrieved image framed green when it is the seen one. The title names the subject, backbone and phase
and gives the online top-5 accuracy on the gallery trials against chance.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from megdecode.io import atomic_output

if TYPE_CHECKING:
    from megdecode.artifacts.online_model import OnlineModel
    from megdecode.online.replay import RunResult

N_EXAMPLES = 8
THUMB = 64
TYPE_COLOURS = {"exp": "C0", "test": "C1", "catch": "C7"}


def _thumbnail(path: Path) -> np.ndarray | None:
    from megdecode.artifacts.stimuli import read_image

    if not path.is_file():
        return None
    return np.asarray(read_image(path).resize((THUMB, THUMB)))


def _latency_panel(ax, latency_ms: np.ndarray) -> None:
    if latency_ms.size:
        ax.hist(latency_ms, bins=40, color="C0")
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            value = np.percentile(latency_ms, q)
            ax.axvline(value, color="k", ls=style, lw=1, label=f"p{q} {value:.2f} ms")
        ax.legend(fontsize="small")
    ax.set(xlabel="latency: last needed sample -> top-5 (ms)", ylabel="trials")


def _timeline_panel(ax, run: RunResult, span: float) -> None:
    events, sfreq = run.events, run.sfreq
    shown = events[events["sample"] / sfreq <= span]
    for sample, trial_type in zip(shown["sample"], shown["trial_type"], strict=True):
        ax.axvline(sample / sfreq, color=TYPE_COLOURS.get(trial_type, "C3"), lw=1)
    hits = {row["onset_sample"]: row.get("online_top5_hit", np.nan) for row in run.rows}
    for trial in run.decoded:
        end = (trial.last_sample + 1) / sfreq
        if end > span:
            break
        ax.plot([trial.onset_sample / sfreq, end], [0.3, 0.3], color="C2", lw=2)
        hit = hits.get(trial.onset_sample, np.nan)
        if hit is not None and np.isfinite(hit):
            ax.plot(end, 0.65, "o" if hit else "x", color="C2" if hit else "C3", ms=8, mew=2)
    ax.set(xlim=(0, span), ylim=(0, 1), yticks=[], xlabel=f"{run.stem}: time (s)")
    ax.set_title(
        "onsets (blue exp, orange test, grey catch); green bar: onset -> window end, decoded at its end; "
        "gallery trials: o top-5 hit, x miss",
        fontsize="small",
    )


def _examples_panel(fig, spec, table: pd.DataFrame, files: Mapping[str, str], images_root: Path) -> None:
    gallery_trials = table[(table["status"] == "decoded") & table["online_top5_hit"].notna()].head(N_EXAMPLES)
    grid = spec.subgridspec(6, max(1, len(gallery_trials)), hspace=0.05, wspace=0.05)
    for col, (_, trial) in enumerate(gallery_trials.iterrows()):
        seen = str(trial["image_id"])
        shown = [seen, *str(trial["top5"]).split(",")]
        for row, image_id in enumerate(shown):
            ax = fig.add_subplot(grid[row, col])
            thumb = _thumbnail(images_root / str(files.get(image_id, "")))
            if thumb is not None:
                ax.imshow(thumb)
            else:
                ax.text(0.5, 0.5, image_id, ha="center", va="center", fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("\n".join(textwrap.wrap(seen.replace("_", " "), 14)), fontsize=6)
                for side in ax.spines.values():
                    side.set(color="k", lw=2)
            elif image_id == seen:
                for side in ax.spines.values():
                    side.set(color="C2", lw=4)
            if col == 0:
                ax.set_ylabel("seen" if row == 0 else f"top {row}", fontsize=7)


def replay_figure(
    table: pd.DataFrame,
    summary: pd.DataFrame,
    first_run: RunResult,
    stimuli: pd.DataFrame,
    images_root: Path,
    timeline_s: float,
    online: OnlineModel,
    out: Path,
) -> None:
    """Write ``replay.png`` (see the module docstring): ``table`` and ``summary`` are the replay's trials
    and summary, ``first_run`` the first replayed run, ``stimuli`` the stimulus table (``file`` relative
    to ``images_root``), ``online`` the online model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    value = summary.set_index("metric")["value"]
    fig = plt.figure(figsize=(10, 12))
    spec = fig.add_gridspec(3, 1, height_ratios=[1.6, 1.0, 6.0], hspace=0.35)
    decoded_rows = table[table["status"] == "decoded"]
    _latency_panel(fig.add_subplot(spec[0]), decoded_rows["latency_ms"].to_numpy(float))
    _timeline_panel(fig.add_subplot(spec[1]), first_run, timeline_s)
    _examples_panel(fig, spec[2], table, stimuli["file"].astype(str).to_dict(), images_root)
    fig.suptitle(
        f"sub-{online.subject} online replay: backbone {online.backbone}, phase {online.phase}\n"
        f"online top-5 {float(value['online_top5_acc']):.3f} vs chance {float(value['chance_top5']):.3f} "
        f"on {value['n_gallery_trials']} test-set trials (gallery of {value['gallery_size']}); "
        f"{value['trials_decoded']} trials decoded, {value['trials_skipped']} skipped",
        fontsize=10,
    )
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png", metadata={"Software": None})
    plt.close(fig)
