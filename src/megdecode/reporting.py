"""Figure-ready tables and figures from the evaluation outputs.

- :func:`collect_results`: every number in one long table (retrieval + time-resolved).
- :func:`table1` + :func:`table1_markdown` / :func:`table1_latex`: the paper's Table 1 view (rows = backbones,
  columns = brain module vs ridge on both test sets, mean over subjects +- SD, brain/ridge factor).
- ``plot_*``: retrieval bars, per-subject panels, time courses, attention maps, top-5 retrieved images.
  Each figure is written as PNG and PDF, atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from megdecode.evaluation import (  # noqa: E402
    BRAIN_WINDOW_KIND,
    FULL_WINDOW,
    backbone_label,
    gallery,
    load_latents,
    standardise,
)
from megdecode.io import atomic_output, load_npz, read_json, read_tsv, write_tsv  # noqa: E402
from megdecode.metrics import retrieval as rm  # noqa: E402

log = logging.getLogger(__name__)

LONG_COLUMNS = [
    "subject",
    "backbone",
    "backbone_label",
    "model",
    "test_set",
    "window",
    "window_kind",
    "tmin",
    "tmax",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "chance",
]
MODEL_LABELS = {
    "brain": "Brain module",
    "brain_shared": "Brain module (shared)",
    "ridge": "Ridge",
    "chance": "Chance",
}
TEST_SET_LABELS = {"test_small": "small test set", "test_large": "large test set"}
METRIC_LABELS = {"median_rank": "median rank (%)"}
REPORT_FIGURE_NAMES = ("retrieval", "subjects", "timecourses")
COLORS = {"brain": "#1f77b4", "brain_shared": "#17becf", "ridge": "#7f7f7f", "chance": "#d62728"}


@dataclass(frozen=True)
class ReportSettings:
    """Presentation settings (config section ``report``)."""

    dpi: int = 150
    table_test_sets: tuple[str, ...] = ("test_small", "test_large")
    table_metrics: tuple[str, ...] = ("top5_acc", "median_rank")
    n_example_trials: int = 4

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ReportSettings:
        return cls(
            dpi=int(cfg.get("dpi", cls.dpi)),
            table_test_sets=tuple(cfg.get("table_test_sets", cls.table_test_sets)),
            table_metrics=tuple(cfg.get("table_metrics", cls.table_metrics)),
            n_example_trials=int(cfg.get("n_example_trials", cls.n_example_trials)),
        )


def metric_label(metric: str) -> str:
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    if metric.startswith("top") and metric.endswith("_acc"):
        return f"top-{metric[3:-4]} accuracy (%)"
    return metric


# --------------------------------------------------------------------------- tables


def collect_results(
    retrieval_files: Sequence[Path | str],
    timeresolved_files: Sequence[Path | str],
    latent_meta: Mapping[str, Path | str] | None = None,
) -> pd.DataFrame:
    """Concatenate the evaluation TSVs into one long table with display labels of the backbones."""
    frames = [read_tsv(f, dtype={"subject": str}) for f in retrieval_files]
    frames = [f.assign(window_kind=FULL_WINDOW, tmin=np.nan, tmax=np.nan) for f in frames]
    frames += [read_tsv(f, dtype={"subject": str}) for f in timeresolved_files]
    if not frames:
        raise ValueError("no evaluation tables given; check evaluation.models and training.backbones")
    df = pd.concat(frames, ignore_index=True)
    labels = {
        b: backbone_label(read_json(p) if Path(p).is_file() else {}, b)
        for b, p in (latent_meta or {}).items()
    }
    df["backbone_label"] = df["backbone"].map(lambda b: labels.get(b, b))
    return df.reindex(columns=LONG_COLUMNS)


def retrieval_only(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["window"] == FULL_WINDOW]


def table1(df: pd.DataFrame, settings: ReportSettings = ReportSettings()) -> pd.DataFrame:
    """Mean and SD over subjects per (backbone, test set, metric, model), plus brain/ridge factors.

    Returns a long frame with columns ``backbone_label test_set metric model mean sd n_subjects chance``;
    model ``brain/ridge`` holds the ratio of the subject means (for accuracies: higher = brain better;
    for ``median_rank``: ridge/brain, so that > 1 also means the brain module is better).
    """
    ret = retrieval_only(df)
    ret = ret[ret.test_set.isin(settings.table_test_sets) & ret.metric.isin(settings.table_metrics)]
    ret = ret[ret.model != "chance"]
    keys = ["backbone", "backbone_label", "test_set", "metric", "model"]
    agg = ret.groupby(keys, sort=False).agg(
        mean=("value", "mean"),
        sd=("value", "std"),
        n_subjects=("subject", "nunique"),
        chance=("chance", "mean"),
    )
    agg = agg.reset_index()
    ratios = []
    for (backbone, label, test_set, metric), g in agg.groupby(keys[:4], sort=False):
        means = dict(zip(g.model, g["mean"], strict=True))
        if "brain" in means and "ridge" in means:
            num, den = (
                (means["ridge"], means["brain"])
                if metric == "median_rank"
                else (means["brain"], means["ridge"])
            )
            ratios.append(
                dict(
                    backbone=backbone,
                    backbone_label=label,
                    test_set=test_set,
                    metric=metric,
                    model="brain/ridge",
                    mean=num / den if den > 0 else np.inf,
                    sd=np.nan,
                    n_subjects=g.n_subjects.max(),
                    chance=np.nan,
                )
            )
    return pd.concat([agg, pd.DataFrame(ratios)], ignore_index=True)


def _cell(mean: float, sd: float, model: str) -> str:
    if model == "brain/ridge":
        return f"{mean:.1f}x"
    spread = f" ± {100 * sd:.1f}" if np.isfinite(sd) else ""
    return f"{100 * mean:.1f}{spread}"


SHORT_TEST_SET = {"test_small": "small", "test_large": "large"}
SHORT_MODEL = {"brain": "brain", "brain_shared": "shared", "ridge": "ridge", "brain/ridge": "brain/ridge"}


def _short_metric(metric: str) -> str:
    if metric == "median_rank":
        return "med. rank"
    if metric.startswith("top") and metric.endswith("_acc"):
        return f"top-{metric[3:-4]}"
    return metric


def _table1_grid(
    t1: pd.DataFrame, settings: ReportSettings
) -> tuple[list[tuple[str, str, str]], list[list[str]], list[str]]:
    """Columns (test set, metric, model), rows of cell strings (first = backbone) and footnotes of Table 1."""
    models = [m for m in ("brain", "brain_shared", "ridge", "brain/ridge") if m in set(t1.model)]
    columns = [
        (ts, metric, m)
        for ts in settings.table_test_sets
        for metric in settings.table_metrics
        for m in models
    ]
    columns = [c for c in columns if ((t1.test_set == c[0]) & (t1.metric == c[1]) & (t1.model == c[2])).any()]
    indexed = t1.set_index(["backbone_label", "test_set", "metric", "model"])
    rows = []
    for label in dict.fromkeys(t1.backbone_label):
        row = [str(label)]
        for c in columns:
            key = (label, *c)
            if key not in indexed.index:
                row.append("–")
                continue
            found = indexed.loc[key]
            found = found.iloc[0] if isinstance(found, pd.DataFrame) else found
            row.append(_cell(float(found["mean"]), float(found["sd"]), c[2]))
        rows.append(row)
    chance = t1.dropna(subset=["chance"]).groupby(["test_set", "metric"], sort=False).chance.mean()
    notes = [
        "Chance: "
        + "; ".join(
            f"{SHORT_TEST_SET.get(ts, ts)} {_short_metric(m)} {100 * v:.2f}" for (ts, m), v in chance.items()
        )
        + "."
    ]
    n = int(t1.n_subjects.max()) if len(t1) else 0
    notes.append(
        f"Values in %: top-k accuracy (higher is better), median relative rank (lower is better); "
        f"mean ± SD over {n} subjects; small = small test set (repetitions averaged), large = large "
        "test set (single trials); brain/ridge = ratio of the means (median rank: ridge/brain, so > 1 "
        "favours the brain module)."
    )
    return columns, rows, notes


def _column_label(column: tuple[str, str, str]) -> str:
    ts, metric, model = column
    return f"{SHORT_TEST_SET.get(ts, ts)} {_short_metric(metric)} {SHORT_MODEL.get(model, model)}"


def table1_markdown(t1: pd.DataFrame, settings: ReportSettings = ReportSettings()) -> str:
    columns, rows, notes = _table1_grid(t1, settings)
    header = ["Backbone"] + [_column_label(c) for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    title = "Table 1. Image retrieval, brain module vs linear ridge decoder."
    return "\n".join([title, "", *lines, "", *notes]) + "\n"


def latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("–", "--"),
    ):
        text = text.replace(a, b)
    return text


def table1_latex(t1: pd.DataFrame, settings: ReportSettings = ReportSettings()) -> str:
    columns, rows, notes = _table1_grid(t1, settings)
    groups: list[tuple[str, int]] = []
    for ts, *_ in columns:
        if groups and groups[-1][0] == ts:
            groups[-1] = (ts, groups[-1][1] + 1)
        else:
            groups.append((ts, 1))
    top = " & ".join(
        [""] + [rf"\multicolumn{{{n}}}{{c}}{{{TEST_SET_LABELS.get(ts, ts)}}}" for ts, n in groups]
    )
    second = " & ".join(
        ["Backbone"]
        + [latex_escape(f"{_short_metric(m)} {SHORT_MODEL.get(mod, mod)}") for _, m, mod in columns]
    )
    body = [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{Image retrieval, brain module vs linear ridge decoder. "
        + latex_escape(" ".join(notes))
        + "}",
        r"\label{tab:retrieval}",
        r"\resizebox{\linewidth}{!}{%",
        rf"\begin{{tabular}}{{l{'r' * len(columns)}}}",
        r"\toprule",
        top + r" \\",
        second + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write_tables(
    retrieval_files: Sequence[Path | str],
    timeresolved_files: Sequence[Path | str],
    latent_meta: Mapping[str, Path | str],
    out_long: Path | str,
    out_md: Path | str,
    out_tex: Path | str,
    cfg: Mapping[str, Any],
) -> pd.DataFrame:
    """The long TSV and Table 1 (Markdown + LaTeX)."""
    settings = ReportSettings.from_config(cfg)
    df = collect_results(retrieval_files, timeresolved_files, latent_meta)
    write_tsv(df, out_long)
    t1 = table1(df, settings)
    for text, path in ((table1_markdown(t1, settings), out_md), (table1_latex(t1, settings), out_tex)):
        with atomic_output(path) as tmp:
            Path(tmp).write_text(text)
    log.info("wrote %d numbers; Table 1:\n%s", len(df), table1_markdown(t1, settings))
    return df


# --------------------------------------------------------------------------- figures


def legend_above(fig: plt.Figure, ax: plt.Axes) -> None:
    """Lay out ``fig`` and put the legend of ``ax`` in one row above the panels."""
    handles, names = ax.get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(names), frameon=False)


def save_figure(fig: plt.Figure, png: Path | str, pdf: Path | str, dpi: int = 150) -> None:
    """Write ``fig`` as PNG and PDF (atomically) and close it."""
    for path, kwargs in ((png, {"dpi": dpi}), (pdf, {})):
        with atomic_output(path) as tmp:
            fig.savefig(
                tmp,
                format=Path(path).suffix[1:],
                bbox_inches="tight",
                metadata=_stable_metadata(path),
                **kwargs,
            )
    plt.close(fig)


def _stable_metadata(path: Path | str) -> dict[str, Any]:
    # no creation dates in the files: same inputs -> same bytes
    return {"CreationDate": None} if str(path).endswith(".pdf") else {"Software": None}


def _style() -> None:
    plt.rcParams.update(
        {"font.size": 8, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}
    )


def plot_retrieval_bars(df: pd.DataFrame, metric: str = "top5_acc") -> plt.Figure:
    """Bars per backbone (brain module, mean over subjects; dots = subjects), ridge ticks, chance dashed."""
    _style()
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
    _style()
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
    _style()
    tr = df[(df.window != FULL_WINDOW) & (df.metric == metric)]
    listed = tr[tr.window_kind == BRAIN_WINDOW_KIND]
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
    comps = read_json(path).get("components", {})
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
    df = read_tsv(long_table, dtype={"subject": str})
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


# --------------------------------------------------------------------------- examples


def attention_weights(state: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Softmax spatial-attention weights (outputs, channels) from a brain-module state dict, or None.

    The brain module stores ``<prefix>.heads`` (outputs, embedding dim) and the fixed Fourier embedding of the
    sensor positions ``<prefix>.embedding`` (channels, embedding dim); weights = softmax(heads @ embedding.T).
    """
    for key in state:
        if key.endswith("heads"):
            prefix = key[: -len("heads")]
            emb = state.get(prefix + "embedding")
            if emb is not None and emb.ndim == 2 and state[key].shape[1] == emb.shape[1]:
                scores = np.asarray(state[key], np.float64) @ np.asarray(emb, np.float64).T
                scores -= scores.max(axis=1, keepdims=True)
                w = np.exp(scores)
                return w / w.sum(axis=1, keepdims=True)
    return None


def plot_attention_maps(weights: np.ndarray, positions: np.ndarray, n_maps: int = 6) -> plt.Figure:
    """Topomaps of the mean attention and of the ``n_maps`` most focal output channels."""
    import mne

    _style()
    focal = np.argsort(-weights.max(axis=1))[:n_maps]
    maps = [("mean over outputs", weights.mean(axis=0))] + [(f"output {i}", weights[i]) for i in focal]
    fig, axes = plt.subplots(1, len(maps), figsize=(1.6 * len(maps), 1.9), squeeze=False)
    pos = np.asarray(positions, dtype=float) - 0.5  # layout in [0, 1] -> centred
    for ax, (title, w) in zip(axes[0], maps, strict=True):
        mne.viz.plot_topomap(w, pos, axes=ax, show=False, cmap="viridis", sphere=0.55, contours=0)
        ax.set_title(title, fontsize=7)
    fig.suptitle("Spatial attention of the brain module (sensor layout)", fontsize=8)
    return fig


def plot_topk_examples(
    pred: np.ndarray,
    image_ids: Sequence[str],
    candidates: np.ndarray,
    gallery_ids: Sequence[str],
    image_paths: Mapping[str, Path],
    n_trials: int = 4,
    k: int = 5,
) -> plt.Figure:
    """For the first ``n_trials`` items: the seen image, then the top-k retrieved (green frame = correct)."""
    from PIL import Image

    _style()
    sim = rm.cosine_similarity(pred[:n_trials], candidates)
    n = min(n_trials, len(pred))
    fig, axes = plt.subplots(n, k + 1, figsize=(1.2 * (k + 1), 1.25 * n), squeeze=False)
    for i in range(n):
        order = np.argsort(-sim[i], kind="stable")[:k]
        shown = [(image_ids[i], "seen")] + [(gallery_ids[j], f"#{r + 1}") for r, j in enumerate(order)]
        for c, (img_id, title) in enumerate(shown):
            ax = axes[i][c]
            with Image.open(image_paths[img_id]) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
            if c > 0:
                color = "#2ca02c" if img_id == image_ids[i] else "0.7"
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_edgecolor(color)
                    spine.set_linewidth(2.5 if color != "0.7" else 0.5)
    fig.suptitle("Top-5 retrieved images (small test set)", fontsize=8)
    return fig


def _blank_figure(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=8, wrap=True)
    return fig


def write_examples(
    predictions: Path | str,
    latent_dir: Path | str,
    stimuli_table: Path | str,
    images_root: Path | str,
    model_weights: Path | str | None,
    channels: Path | str | None,
    outputs: Mapping[str, Sequence[str]],
    cfg: Mapping[str, Any],
) -> None:
    """Top-5 retrieved images for a few test trials, and the spatial attention maps (``outputs[name]``)."""
    settings = ReportSettings.from_config(cfg)
    preds = load_npz(predictions)
    latents = load_latents(latent_dir)
    stimuli = read_tsv(stimuli_table, dtype={"image_id": str})
    paths = {r.image_id: Path(images_root) / r.file for r in stimuli.itertuples()}
    ids = preds["test_small_image_id"].astype(str)
    gallery_ids, _ = gallery(ids)
    candidates = standardise(latents.get(gallery_ids), preds["target_mean"], preds["target_std"])
    fig = plot_topk_examples(
        preds["test_small_pred"], ids, candidates, gallery_ids, paths, settings.n_example_trials
    )
    save_figure(fig, *outputs["top5"], dpi=settings.dpi)
    weights = None
    if model_weights is not None and Path(model_weights).is_file() and channels and Path(channels).is_file():
        from safetensors.numpy import load_file

        weights = attention_weights(load_file(str(model_weights)))
    if weights is None:
        log.info("no spatial attention weights found in %s; attention figure left as a note", model_weights)
        fig = _blank_figure("No spatial-attention weights in this brain module.")
    else:
        layout = read_tsv(channels)
        if len(layout) != weights.shape[1]:
            log.info(
                "channels.tsv has %d rows, attention %d channels; note only", len(layout), weights.shape[1]
            )
            fig = _blank_figure("Sensor layout does not match the attention weights.")
        else:
            fig = plot_attention_maps(weights, layout[["x", "y"]].to_numpy())
    save_figure(fig, *outputs["attention"], dpi=settings.dpi)
