"""Figures of the evaluation: retrieval bars, per-subject panels and time courses (PNG + PDF, atomically)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from megdecode.artifacts.evaluation_tables import FULL_WINDOW, read_long_table
from megdecode.artifacts.sourcedata import read_ground_truth
from megdecode.artifacts.windows import LISTED
from megdecode.reporting.common import (
    COLORS,
    MODEL_LABELS,
    TEST_SET_LABELS,
    ReportSettings,
    legend_above,
    metric_label,
    save_figure,
    style,
)
from megdecode.reporting.tables import retrieval_only

log = logging.getLogger(__name__)


def plot_retrieval_bars(df: pd.DataFrame, metric: str = "top5_acc") -> plt.Figure:
    """Bars per backbone (brain module, mean over subjects; dots = subjects), ridge ticks, chance dashed."""
    style()
    ret = retrieval_only(df)
    ret = ret[ret.metric == metric]
    test_sets = [t for t in ("test_small", "test_large") if t in set(ret.test_set)]
    fig, axes = plt.subplots(
        1, max(len(test_sets), 1), figsize=(3.2 * max(len(test_sets), 1), 2.8), squeeze=False
    )
    labels = list(dict.fromkeys(ret.backbone_label))
    brain_models = [m for m in ("brain", "brain_shared") if m in set(ret.model)]
    width = 0.8 / max(len(brain_models), 1)
    for ax, ts in zip(axes[0], test_sets, strict=False):
        sub = ret[ret.test_set == ts]
        x = np.arange(len(labels))
        for j, model in enumerate(brain_models):
            m = sub[sub.model == model].groupby("backbone_label", sort=False).value
            means = m.mean().reindex(labels)
            xs = x - 0.4 + width * (j + 0.5)
            ax.bar(xs, 100 * means.to_numpy(), width * 0.9, color=COLORS[model], label=MODEL_LABELS[model])
            for i, lab in enumerate(labels):
                vals = sub[(sub.model == model) & (sub.backbone_label == lab)].value.to_numpy()
                ax.scatter(np.full(len(vals), xs[i]), 100 * vals, s=6, color="k", zorder=3, linewidths=0)
        ridge = sub[sub.model == "ridge"].groupby("backbone_label", sort=False).value.mean().reindex(labels)
        if ridge.notna().any():
            ax.hlines(100 * ridge.to_numpy(), x - 0.4, x + 0.4, colors="k", linewidth=1.5, label="Ridge")
        if len(sub):
            ax.axhline(
                100 * sub.chance.mean(), color=COLORS["chance"], linestyle="--", linewidth=1, label="Chance"
            )
        ax.set_xticks(x, labels, rotation=30, ha="right")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(TEST_SET_LABELS.get(ts, ts))
    legend_above(fig, axes[0][0])  # inside a panel, it covers the bars
    return fig


def plot_subject_panels(df: pd.DataFrame, metric: str = "top5_acc") -> plt.Figure:
    """One panel per (subject, test set): every model and backbone with its bootstrap 95% CI."""
    style()
    ret = retrieval_only(df)
    ret = ret[ret.metric == metric]
    subjects = sorted(set(ret.subject))
    test_sets = [t for t in ("test_small", "test_large") if t in set(ret.test_set)]
    fig, axes = plt.subplots(
        len(test_sets),
        len(subjects),
        figsize=(2.6 * len(subjects), 2.4 * len(test_sets)),
        squeeze=False,
        sharey="row",
    )
    labels = list(dict.fromkeys(ret.backbone_label))
    models = [m for m in ("brain", "brain_shared", "ridge", "chance") if m in set(ret.model)]
    width = 0.8 / len(models)
    for r, ts in enumerate(test_sets):
        for c, subject in enumerate(subjects):
            ax = axes[r][c]
            sub = ret[(ret.subject == subject) & (ret.test_set == ts)]
            for j, model in enumerate(models):
                m = sub[sub.model == model].set_index("backbone_label").reindex(labels)
                xs = np.arange(len(labels)) - 0.4 + width * (j + 0.5)
                err = 100 * np.abs(np.vstack([m.value - m.ci_low, m.ci_high - m.value]).astype(float))
                ax.bar(
                    xs,
                    100 * m.value,
                    width * 0.9,
                    yerr=err,
                    color=COLORS[model],
                    label=MODEL_LABELS[model],
                    error_kw={"elinewidth": 0.7},
                )
            if len(sub):
                ax.axhline(100 * sub.chance.mean(), color="k", linestyle=":", linewidth=0.8)
            ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
            ax.set_title(f"sub-{subject}, {TEST_SET_LABELS.get(ts, ts)}")
            if c == 0:
                ax.set_ylabel(metric_label(metric))
    legend_above(fig, axes[0][0])
    return fig


def plot_timecourses(
    df: pd.DataFrame,
    metric: str = "top5_acc",
    latencies: Mapping[str, float] | None = None,
    image_offset: float = 0.5,
) -> plt.Figure:
    """Time-resolved ridge decoding: sliding windows (x = window centre) and growing windows (x = window end).

    The brain module trained on listed windows (window_kind ``listed``) is drawn as diamonds (mean +- SD
    over subjects) in every panel, at the window centre (sliding) or end (growing), in its backbone's colour.

    Lines = mean over subjects, bands = SD over subjects; image onset/offset grey lines, chance dashed,
    simulated latencies (if given) as dotted lines.
    """
    style()
    tr = df[(df.window != FULL_WINDOW) & (df.metric == metric)]
    listed = tr[tr.window_kind == LISTED]
    test_sets = [t for t in ("test_small", "test_large") if t in set(tr.test_set)]
    kinds = [k for k in ("sliding", "growing") if k in set(tr.window_kind)]
    fig, axes = plt.subplots(
        max(len(kinds), 1),
        max(len(test_sets), 1),
        figsize=(3.4 * max(len(test_sets), 1), 2.4 * max(len(kinds), 1)),
        squeeze=False,
        sharex=True,
    )
    cmap = plt.get_cmap("tab10")
    for r, kind in enumerate(kinds):
        for c, ts in enumerate(test_sets):
            ax = axes[r][c]
            sub = tr[(tr.window_kind == kind) & (tr.test_set == ts)]
            for i, (label, g) in enumerate(sub.groupby("backbone_label", sort=False)):
                x = (g.tmin + g.tmax) / 2 if kind == "sliding" else g.tmax
                stats = g.assign(x=x.round(6)).groupby("x").value.agg(["mean", "std"]).fillna(0.0)
                ax.plot(stats.index, 100 * stats["mean"], color=cmap(i % 10), label=str(label), linewidth=1.2)
                ax.fill_between(
                    stats.index,
                    100 * (stats["mean"] - stats["std"]),
                    100 * (stats["mean"] + stats["std"]),
                    color=cmap(i % 10),
                    alpha=0.2,
                    linewidth=0,
                )
            labels = list(dict.fromkeys(sub.backbone_label))
            marks = listed[listed.test_set == ts]
            for label, g in marks.groupby("backbone_label", sort=False):
                x = (g.tmin + g.tmax) / 2 if kind == "sliding" else g.tmax
                stats = g.assign(x=x.round(6)).groupby("x").value.agg(["mean", "std"]).fillna(0.0)
                i = labels.index(label) if label in labels else len(labels)
                ax.errorbar(
                    stats.index,
                    100 * stats["mean"],
                    yerr=100 * stats["std"],
                    fmt="D",
                    color=cmap(i % 10),
                    markersize=4,
                    markeredgecolor="k",
                    linewidth=0.8,
                    label=f"{label}, brain module",
                )
            for t in (0.0, image_offset):
                ax.axvline(t, color="0.6", linewidth=0.8)
            for name, t in (latencies or {}).items():
                ax.axvline(t, color="k", linestyle=":", linewidth=0.8)
                ax.text(t, ax.get_ylim()[1], f" {name}", fontsize=6, va="top")
            if len(sub):
                ax.axhline(100 * sub.chance.mean(), color=COLORS["chance"], linestyle="--", linewidth=0.8)
            ax.set_title(f"{kind} windows, {TEST_SET_LABELS.get(ts, ts)}")
            ax.set_ylabel(metric_label(metric))
            ax.set_xlabel("window centre (s)" if kind == "sliding" else "window end (s)")
            ax.tick_params(labelbottom=True)
    axes[0][0].legend(frameon=False, fontsize=6)
    fig.tight_layout()
    return fig


def ground_truth_latencies(path: Path | str | None) -> dict[str, float]:
    """Named latencies (s) of the image-dependent components in the simulator's ground_truth.json.

    Reads ``components.<name>.latencies_s`` (lists; ``evoked``, the image-independent response, is skipped).
    Returns {} when the file is absent (real data) or holds no latencies.
    """
    if path is None or not Path(path).is_file():
        return {}
    comps = read_ground_truth(path).get("components", {})
    out: dict[str, float] = {}
    for name, comp in comps.items() if isinstance(comps, Mapping) else ():
        if name == "evoked" or not isinstance(comp, Mapping):
            continue
        lats = comp.get("latencies_s", [])
        lats = [lats] if isinstance(lats, int | float) else list(lats)
        for i, t in enumerate(lats):
            out[name if len(lats) == 1 else f"{name}{i + 1}"] = float(t)
    if not out:
        log.warning("%s holds no component latencies; time courses drawn without them", path)
    return out


def write_figures(
    long_table: Path | str,
    outputs: Mapping[str, Sequence[str]],
    cfg: Mapping[str, Any],
    ground_truth: Path | str | None = None,
    image_offset: float = 0.5,
) -> None:
    """Retrieval bars, per-subject panels and time courses; ``outputs[name] = [png, pdf]``.

    ``image_offset``: image duration (s), marked on the time courses; ``ground_truth``: the simulator's
    ground_truth.json (its component latencies are marked too).
    """
    settings = ReportSettings.from_config(cfg)
    df = read_long_table(long_table)
    latencies = ground_truth_latencies(ground_truth)
    figures = {
        "retrieval": lambda: plot_retrieval_bars(df),
        "subjects": lambda: plot_subject_panels(df),
        "timecourses": lambda: plot_timecourses(df, latencies=latencies, image_offset=image_offset),
    }
    for name, make in figures.items():
        png, pdf = outputs[name]
        save_figure(make(), png, pdf, settings.dpi)
        log.info("wrote %s", png)
