"""MEG vs fMRI: retrieval per backbone for both modalities side by side (table and figure).

Reads the evaluation stage's retrieval tables of both modalities (MEG: ``{R}/evaluation/retrieval``; fMRI:
``{R}/fmri/evaluation/retrieval``), keeps each decoder's retrieval head (:func:`scored_head_rows`), averages
over subjects and adds ``normalised`` = (value - chance) / (1 - chance) for accuracies (0 = chance, 1 =
perfect) so backbones with different chance levels compare. Each backbone is labelled with the level of the
features it carries (``low``: computed from pixels; ``high``: semantic,
:func:`megdecode.plan.feature_level`). The figure's right panel is the mean normalised accuracy of each
modality's best decoder over the low- and the high-level backbones: the paper's third finding is that fMRI
recovers low-level features better while MEG mostly carries high-level ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from megdecode.artifacts.evaluation_tables import read_retrieval_table, scored_head_rows
from megdecode.artifacts.reconstruction import read_metrics
from megdecode.io import atomic_output, write_tsv
from megdecode.reporting.common import metric_label, save_figure, style

MEG, FMRI = "MEG", "fMRI"
COMPARISON_COLUMNS = [
    "modality",
    "model",
    "backbone",
    "feature_level",
    "test_set",
    "metric",
    "mean",
    "sd",
    "n_subjects",
    "chance",
    "normalised",
]
DECODER_LABELS = {
    (MEG, "brain"): "MEG brain module",
    (MEG, "ridge"): "MEG ridge",
    (FMRI, "mlp"): "fMRI MLP",
    (FMRI, "ridge"): "fMRI ridge",
}
DECODER_COLOURS = {
    (MEG, "brain"): "#1f77b4",
    (MEG, "ridge"): "#9ecae1",
    (FMRI, "mlp"): "#d95f02",
    (FMRI, "ridge"): "#fdae6b",
}


def _read_tables(files: Sequence[Path | str], modality: str) -> pd.DataFrame:
    frames = [read_retrieval_table(f) for f in files]
    if not frames:
        raise ValueError(f"no {modality} retrieval tables given")
    return scored_head_rows(pd.concat(frames, ignore_index=True)).assign(modality=modality)


def compare_modalities(
    meg_files: Sequence[Path | str],
    fmri_files: Sequence[Path | str],
    feature_levels: Mapping[str, str],
) -> pd.DataFrame:
    """Subject means per (modality, decoder, backbone, test set, metric) of backbones scored in both."""
    df = pd.concat([_read_tables(meg_files, MEG), _read_tables(fmri_files, FMRI)], ignore_index=True)
    df = df[df["model"] != "chance"]
    both = set(df.loc[df["modality"] == MEG, "backbone"]) & set(df.loc[df["modality"] == FMRI, "backbone"])
    df = df[df["backbone"].isin(both)]
    keys = ["modality", "model", "backbone", "test_set", "metric"]
    out = (
        df.groupby(keys, sort=False)
        .agg(
            mean=("value", "mean"),
            sd=("value", "std"),
            n_subjects=("subject", "nunique"),
            chance=("chance", "mean"),
        )
        .reset_index()
    )
    out["sd"] = out["sd"].fillna(0.0)
    out["feature_level"] = out["backbone"].map(lambda b: feature_levels.get(b, "low"))
    accuracy = out["metric"].str.endswith("_acc")
    out["normalised"] = np.where(accuracy, (out["mean"] - out["chance"]) / (1 - out["chance"]), np.nan)
    return out.reindex(columns=COMPARISON_COLUMNS)


def level_summary(table: pd.DataFrame, test_set: str, metric: str) -> pd.DataFrame:
    """Modality (rows) x feature level (columns): mean over backbones of the best decoder's normalised score.

    The best decoder is taken per backbone (not every decoder is trained on every backbone).
    """
    rows = table[(table["test_set"] == test_set) & (table["metric"] == metric)]
    best = rows.groupby(["modality", "backbone", "feature_level"])["normalised"].max().reset_index()
    summary = best.groupby(["modality", "feature_level"])["normalised"].mean().unstack("feature_level")
    return summary.reindex(columns=[c for c in ("low", "high") if c in summary.columns])


def comparison_markdown(table: pd.DataFrame, test_set: str, metric: str) -> str:
    """One row per backbone, one column per decoder: mean ± SD over subjects (chance in its own column)."""
    rows = table[(table["test_set"] == test_set) & (table["metric"] == metric)]
    decoders = [d for d in DECODER_LABELS if d in set(zip(rows["modality"], rows["model"], strict=True))]
    header = ["backbone", "features", *(DECODER_LABELS[d] for d in decoders), "chance"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    scale = 100 if metric.endswith("_acc") or metric == "median_rank" else 1
    for backbone, group in rows.groupby("backbone", sort=False):
        cells = [backbone, str(group["feature_level"].iloc[0])]
        for modality, model in decoders:
            hit = group[(group["modality"] == modality) & (group["model"] == model)]
            cells.append(
                f"{scale * hit['mean'].iloc[0]:.1f} ± {scale * hit['sd'].iloc[0]:.1f}" if len(hit) else "n/a"
            )
        cells.append(f"{scale * group['chance'].iloc[0]:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    text = f"{metric_label(metric)}, {test_set}; mean ± SD over subjects\n\n" + "\n".join(lines) + "\n"
    if metric.endswith("_acc"):
        summary = level_summary(table, test_set, metric)
        text += (
            "\nBest decoder per backbone, (accuracy - chance) / (1 - chance), mean over the backbones of "
            "each feature level\n\n| modality | "
            + " | ".join(f"{c}-level" for c in summary.columns)
            + " |\n"
            + "|"
            + "---|" * (1 + len(summary.columns))
            + "\n"
        )
        for modality, values in summary.iterrows():
            text += f"| {modality} | " + " | ".join(f"{v:.2f}" for v in values) + " |\n"
    return text


def plot_comparison(table: pd.DataFrame, test_set: str, metric: str) -> plt.Figure:
    """Left: the metric per backbone and decoder (bars: subject means, ticks: SD); right: low vs high."""
    style()
    rows = table[(table["test_set"] == test_set) & (table["metric"] == metric)]
    backbones = list(dict.fromkeys(rows.sort_values("feature_level", kind="stable")["backbone"]))
    decoders = [d for d in DECODER_LABELS if d in set(zip(rows["modality"], rows["model"], strict=True))]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.0, 2.8), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / max(len(decoders), 1)
    scale = 100 if metric.endswith("_acc") or metric == "median_rank" else 1
    for k, decoder in enumerate(decoders):
        sel = rows[(rows["modality"] == decoder[0]) & (rows["model"] == decoder[1])].set_index("backbone")
        x = np.arange(len(backbones)) + (k - (len(decoders) - 1) / 2) * width
        means = [scale * sel["mean"].get(b, np.nan) for b in backbones]
        sds = [scale * sel["sd"].get(b, np.nan) for b in backbones]
        ax.bar(x, means, width, yerr=sds, color=DECODER_COLOURS[decoder], label=DECODER_LABELS[decoder])
    chance = rows.groupby("backbone")["chance"].first()
    for i, b in enumerate(backbones):
        ax.hlines(scale * chance[b], i - 0.45, i + 0.45, colors="k", linestyles=":", linewidth=0.8)
    levels = rows.groupby("backbone")["feature_level"].first()
    ax.set_xticks(np.arange(len(backbones)), [f"{b}\n({levels[b]}-level)" for b in backbones])
    ax.set_ylabel(metric_label(metric))
    ax.set_title(f"Retrieval per backbone ({test_set}; dotted: chance)")
    ax.legend(frameon=False, fontsize=6, ncol=2)
    if metric.endswith("_acc"):
        summary = level_summary(table, test_set, metric)
        x = np.arange(len(summary))
        for j, level in enumerate(("low", "high")):
            if level in summary:
                ax2.bar(
                    x + (j - 0.5) * 0.38,
                    summary[level],
                    0.38,
                    label=f"{level}-level backbones",
                    color=["#66a61e", "#7570b3"][j],
                )
        ax2.set_xticks(x, list(summary.index))
        ax2.axhline(0, color="k", linewidth=0.6)
        ax2.set_ylabel("(acc - chance) / (1 - chance)")
        ax2.set_title("Best decoder per backbone, mean per level")
        ax2.legend(frameon=False, fontsize=6)
    else:
        ax2.axis("off")
    fig.tight_layout()
    return fig


def write_comparison(
    meg_files: Sequence[Path | str],
    fmri_files: Sequence[Path | str],
    feature_levels: Mapping[str, str],
    outputs: Mapping[str, Path | str],
    test_set: str,
    metric: str,
    dpi: int = 150,
) -> pd.DataFrame:
    """Write ``tsv`` (every test set, metric), ``md`` (``test_set``, ``metric``), figure ``png``/``pdf``."""
    table = compare_modalities(meg_files, fmri_files, feature_levels)
    write_tsv(table, outputs["tsv"])
    with atomic_output(outputs["md"]) as tmp:
        tmp.write_text(comparison_markdown(table, test_set, metric))
    save_figure(plot_comparison(table, test_set, metric), outputs["png"], outputs["pdf"], dpi=dpi)
    return table


# ---- reconstruction: the image metrics of both modalities, split into low- and high-level
#: the field's feature nets (reconstruction.metrics.optional_extractors): AlexNet's early layer is low-level
EXTRACTOR_LEVELS = {"alexnet2": "low", "alexnet5": "high", "inception": "high", "clip": "high"}
EXTRACTOR_LEVELS |= {"effnet": "high", "swav": "high"}
#: the simulated world's semantic readout (megdecode.reconstruction.semantic_readout) is high-level: from
#: pixels it reads the concept's attributes (shape, colour, texture), the simulated world's semantics, as
#: Inception and CLIP features read object categories in the paper: image statistics in, categories out.
EXTRACTOR_LEVELS |= {"semantic_readout": "high"}
RECON_COLUMNS = ["modality", "decoder", "generator", "metric", "level", "higher_is_better", "mean", "sd"]
RECON_COLUMNS += ["n_subjects"]


def metric_level(metric: str, feature_levels: Mapping[str, str]) -> str:
    """``low`` for PixCorr, SSIM and features of low-level backbones; ``high`` for semantic features."""
    if metric in ("pixcorr", "ssim"):
        return "low"
    name = metric.removeprefix("two_way_").removesuffix("_distance")
    return feature_levels.get(name, EXTRACTOR_LEVELS.get(name, "low"))


def compare_reconstruction(
    meg_files: Sequence[Path | str],
    fmri_files: Sequence[Path | str],
    feature_levels: Mapping[str, str],
    decoders: Mapping[str, str],
) -> pd.DataFrame:
    """Per (modality, generator, metric): mean and SD over subjects of the per-subject image means.

    ``decoders`` names the decoder whose predictions each modality's generators used (``MEG``, ``fMRI``).
    """
    frames = []
    for modality, files in ((MEG, meg_files), (FMRI, fmri_files)):
        for f in files:
            table = read_metrics(f)
            metrics = [c for c in table.columns if c in ("pixcorr", "ssim") or c.startswith("two_way_")]
            metrics += [c for c in table.columns if c.endswith("_distance")]
            per_subject = pd.DataFrame({"metric": metrics, "value": table[metrics].mean().to_numpy()})
            frames.append(
                per_subject.assign(
                    modality=modality, subject=table["subject"].iloc[0], generator=table["generator"].iloc[0]
                )
            )
    df = pd.concat(frames, ignore_index=True)
    out = (
        df.groupby(["modality", "generator", "metric"], sort=False)
        .agg(mean=("value", "mean"), sd=("value", "std"), n_subjects=("subject", "nunique"))
        .reset_index()
    )
    out["sd"] = out["sd"].fillna(0.0)
    out["level"] = out["metric"].map(lambda m: metric_level(m, feature_levels))
    out["higher_is_better"] = ~out["metric"].str.endswith("_distance")
    out["decoder"] = out["modality"].map(dict(decoders))
    return out.reindex(columns=RECON_COLUMNS)


def reconstruction_markdown(table: pd.DataFrame) -> str:
    """One row per (generator, metric), MEG and fMRI side by side (mean ± SD over subjects)."""
    decoders = table.groupby("modality")["decoder"].first()
    lines = [
        "Reconstruction metrics, mean ± SD over subjects (per-subject means over the test images); ↑ "
        f"higher is better, ↓ lower; decoders: MEG {decoders.get(MEG, '?')}, fMRI {decoders.get(FMRI, '?')}",
        "",
        "| generator | metric | level | MEG | fMRI |",
        "|---|---|---|---|---|",
    ]
    for (generator, metric), group in table.groupby(["generator", "metric"], sort=False):
        arrow = "↑" if group["higher_is_better"].iloc[0] else "↓"
        cells = []
        for modality in (MEG, FMRI):
            hit = group[group["modality"] == modality]
            cells.append(f"{hit['mean'].iloc[0]:.3f} ± {hit['sd'].iloc[0]:.3f}" if len(hit) else "n/a")
        lines.append(
            f"| {generator} | {metric} {arrow} | {group['level'].iloc[0]} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines) + "\n"


def plot_reconstruction(table: pd.DataFrame) -> plt.Figure:
    """Per generator, the higher-is-better metrics of both modalities, grouped by low / high level."""
    style()
    rows = table[table["higher_is_better"]].sort_values("level", key=lambda s: s != "low", kind="stable")
    generators = list(dict.fromkeys(rows["generator"]))
    fig, axes = plt.subplots(1, len(generators), figsize=(4.0 * len(generators), 2.6), squeeze=False)
    for ax, generator in zip(axes[0], generators, strict=True):
        sub = rows[rows["generator"] == generator]
        metrics = list(dict.fromkeys(sub["metric"]))
        x = np.arange(len(metrics))
        for k, (modality, colour) in enumerate(((MEG, "#1f77b4"), (FMRI, "#d95f02"))):
            sel = sub[sub["modality"] == modality].set_index("metric")
            ax.bar(
                x + (k - 0.5) * 0.38,
                [sel["mean"].get(m, np.nan) for m in metrics],
                0.38,
                yerr=[sel["sd"].get(m, np.nan) for m in metrics],
                color=colour,
                label=f"{modality} ({sel['decoder'].iloc[0] if len(sel) else '?'})",
            )
        levels = sub.groupby("metric")["level"].first()
        for i, m in enumerate(metrics):  # the high-level half on a grey background
            if levels[m] == "high":
                ax.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0)
        labels = [f"{m.removeprefix('two_way_').replace('_', chr(10))}\n({levels[m]})" for m in metrics]
        ax.set_xticks(x, labels, fontsize=6)
        ax.set_title(f"Reconstruction: {generator}")
        ax.set_ylabel("score (higher is better)")
        ax.legend(frameon=False, fontsize=6)
    fig.tight_layout()
    return fig


def write_reconstruction_comparison(
    meg_files: Sequence[Path | str],
    fmri_files: Sequence[Path | str],
    feature_levels: Mapping[str, str],
    decoders: Mapping[str, str],
    outputs: Mapping[str, Path | str],
    dpi: int = 150,
) -> pd.DataFrame:
    """``recon_tsv``, ``recon_md`` and the figure ``recon_png``/``recon_pdf``."""
    table = compare_reconstruction(meg_files, fmri_files, feature_levels, decoders)
    write_tsv(table, outputs["recon_tsv"])
    with atomic_output(outputs["recon_md"]) as tmp:
        tmp.write_text(reconstruction_markdown(table))
    save_figure(plot_reconstruction(table), outputs["recon_png"], outputs["recon_pdf"], dpi=dpi)
    return table
