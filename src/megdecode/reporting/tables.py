"""Figure-ready tables: every number in one long table, and the paper's Table 1 (Markdown + LaTeX).

- :func:`collect_results`: every number in one long table (retrieval + time-resolved).
- :func:`table1` + :func:`table1_markdown` / :func:`table1_latex`: the paper's Table 1 view (rows = backbones,
  columns = brain module vs ridge on both test sets, mean over subjects +- SD, brain/ridge factor).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.evaluation_tables import (
    FULL_WINDOW,
    LONG_COLUMNS,
    read_evaluation_tables,
    scored_head_rows,
    write_long_table,
)
from megdecode.artifacts.latents import backbone_label, read_meta
from megdecode.io import atomic_output
from megdecode.reporting.common import TEST_SET_LABELS, ReportSettings

log = logging.getLogger(__name__)


def collect_results(
    retrieval_files: Sequence[Path | str],
    timeresolved_files: Sequence[Path | str],
    latent_meta: Mapping[str, Path | str] | None = None,
) -> pd.DataFrame:
    """Every evaluation table in one long frame, with display labels of the backbones."""
    df = read_evaluation_tables(retrieval_files, timeresolved_files)
    labels = {
        b: backbone_label(read_meta(Path(p).parent) if Path(p).is_file() else {}, b)
        for b, p in (latent_meta or {}).items()
    }
    df["backbone_label"] = df["backbone"].map(lambda b: labels.get(b, b))
    return df.reindex(columns=LONG_COLUMNS)


def retrieval_only(df: pd.DataFrame) -> pd.DataFrame:
    """Full-epoch retrieval rows of the head each decoder was trained for retrieval with (brain: clip)."""
    return scored_head_rows(df[df["window"] == FULL_WINDOW])


def table1(df: pd.DataFrame, settings: ReportSettings) -> pd.DataFrame:
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
        "favours the brain module). The brain module is scored on its CLIP head, the head trained for "
        "retrieval (its MSE head, which feeds the generators, is in results_long.tsv); ridge on its "
        "regression output."
    )
    return columns, rows, notes


def _column_label(column: tuple[str, str, str]) -> str:
    ts, metric, model = column
    return f"{SHORT_TEST_SET.get(ts, ts)} {_short_metric(metric)} {SHORT_MODEL.get(model, model)}"


def table1_markdown(t1: pd.DataFrame, settings: ReportSettings) -> str:
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


def table1_latex(t1: pd.DataFrame, settings: ReportSettings) -> str:
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
    write_long_table(df, out_long)
    t1 = table1(df, settings)
    for text, path in ((table1_markdown(t1, settings), out_md), (table1_latex(t1, settings), out_tex)):
        with atomic_output(path) as tmp:
            Path(tmp).write_text(text)
    log.info("wrote %d numbers; Table 1:\n%s", len(df), table1_markdown(t1, settings))
    return df
