"""MEG vs fMRI: retrieval per backbone for both modalities side by side (table and figure).

Reads the evaluation stage's retrieval tables of both modalities (MEG: ``{R}/evaluation/retrieval``; fMRI:
``{R}/fmri/evaluation/retrieval``, and the simulated study's fMRI ceiling, ``{R}/fmri/evaluation/ceiling``),
keeps each decoder's retrieval head (:func:`scored_head_rows`), and reports per subject (value and bootstrap
CI over test items, as evaluated) and over subjects (mean, SD), with ``normalised`` = (value - chance) /
(1 - chance) for accuracies. Each backbone is labelled with the level of the features it carries
(:func:`megdecode.plan.feature_level`: ``low`` computed from pixels, ``high`` semantic, ``untrained`` a
randomly initialised network, which counts as neither). The **best decoder** of a modality on a backbone is
chosen on the validation set (its mean validation score over subjects), never on test; the figure's right
panel is the mean normalised test accuracy of those decoders over the low- and the high-level backbones: the
paper's third finding is that fMRI recovers low-level features better while MEG mostly carries high-level
ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from megdecode.artifacts.evaluation_tables import RETRIEVAL_COLUMNS, read_retrieval_table, scored_head_rows
from megdecode.artifacts.reconstruction import read_metrics
from megdecode.artifacts.splits import VAL
from megdecode.io import atomic_output, write_tsv
from megdecode.reporting.common import metric_label, save_figure, style

MEG, FMRI = "MEG", "fMRI"
MEAN = "mean"  # the ``subject`` of the rows summarising all subjects
CEILING = "ceiling"  # the fMRI ceiling's ``model`` (megdecode.evaluation.fmri_ceiling)
LEVELS = ("low", "high")  # feature levels the level summary averages; ``untrained`` is neither
COMPARISON_COLUMNS = [
    "modality",
    "model",
    "backbone",
    "feature_level",
    "test_set",
    "metric",
    "subject",
    "value",
    "ci_low",
    "ci_high",
    "sd",
    "n_subjects",
    "chance",
    "normalised",
    "val_value",
    "best_on_val",
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
        return pd.DataFrame(columns=[*RETRIEVAL_COLUMNS, "modality"])
    return scored_head_rows(pd.concat(frames, ignore_index=True)).assign(modality=modality)


def _higher_is_better(metric: str) -> bool:
    return metric != "median_rank"


def compare_modalities(
    meg_files: Sequence[Path | str],
    fmri_files: Sequence[Path | str],
    feature_levels: Mapping[str, str],
    ceiling_files: Sequence[Path | str] = (),
) -> pd.DataFrame:
    """Per-subject rows and subject means (``subject`` = ``mean``) per (modality, decoder, backbone, test set,
    metric) of the backbones scored in both modalities, and the fMRI ceiling's rows (backbone ``images``).
    ``val_value``: the decoder's mean validation score; ``best_on_val``: it is the modality's best decoder on
    that backbone by validation."""
    meg, fmri = _read_tables(meg_files, MEG), _read_tables(fmri_files, FMRI)
    if meg.empty or fmri.empty:
        raise ValueError("the comparison needs retrieval tables of both modalities")
    df = pd.concat([meg, fmri], ignore_index=True)
    df = df[df["model"] != "chance"]
    df = df[df["backbone"].isin(set(meg["backbone"]) & set(fmri["backbone"]))]
    df = pd.concat([df, _read_tables(ceiling_files, FMRI)], ignore_index=True)
    df["feature_level"] = df["backbone"].map(lambda b: feature_levels.get(b, "low"))
    df.loc[df["model"] == CEILING, "feature_level"] = "image"
    keys = ["modality", "model", "backbone", "feature_level", "test_set", "metric"]
    means = (
        df.groupby(keys, sort=False)
        .agg(
            value=("value", "mean"),
            sd=("value", "std"),
            n_subjects=("subject", "nunique"),
            chance=("chance", "mean"),
        )
        .reset_index()
        .assign(subject=MEAN)
    )
    means["sd"] = means["sd"].fillna(0.0)
    out = pd.concat(
        [df[[*keys, "subject", "value", "ci_low", "ci_high", "chance"]], means], ignore_index=True
    )
    accuracy = out["metric"].str.endswith("_acc")
    out["normalised"] = np.where(accuracy, (out["value"] - out["chance"]) / (1 - out["chance"]), np.nan)
    val = means[means["test_set"] == VAL].set_index(["modality", "model", "backbone", "metric"])["value"]
    index = pd.MultiIndex.from_frame(out[["modality", "model", "backbone", "metric"]])
    out["val_value"] = val.reindex(index).to_numpy()
    out["best_on_val"] = False
    decoders = out[(out["model"] != CEILING) & out["val_value"].notna()]
    for (_, _, metric), group in decoders.groupby(["modality", "backbone", "metric"]):
        order = group.drop_duplicates("model").sort_values(
            "val_value", ascending=not _higher_is_better(metric)
        )
        best = order["model"].iloc[0]
        out.loc[group.index[group["model"] == best], "best_on_val"] = True
    return out.reindex(columns=COMPARISON_COLUMNS)


def _shown(table: pd.DataFrame, test_set: str, metric: str) -> pd.DataFrame:
    return table[(table["test_set"] == test_set) & (table["metric"] == metric) & (table["model"] != CEILING)]


def level_summary(table: pd.DataFrame, test_set: str, metric: str) -> pd.DataFrame:
    """Modality (rows) x feature level (``low``, ``high``): mean over that level's backbones of the normalised
    test score of the decoder chosen on validation (``best_on_val``); ``untrained`` backbones excluded."""
    rows = _shown(table, test_set, metric)
    rows = rows[(rows["subject"] == MEAN) & rows["best_on_val"] & rows["feature_level"].isin(LEVELS)]
    summary = rows.groupby(["modality", "feature_level"])["normalised"].mean().unstack("feature_level")
    return summary.reindex(columns=[c for c in LEVELS if c in summary.columns])


def _decoders(rows: pd.DataFrame) -> list[tuple[str, str]]:
    present = set(zip(rows["modality"], rows["model"], strict=True))
    return [d for d in DECODER_LABELS if d in present]


def _percent(metric: str) -> float:
    return 100.0 if metric.endswith("_acc") or metric == "median_rank" else 1.0


def comparison_markdown(table: pd.DataFrame, test_set: str, metric: str) -> str:
    """Subject means per backbone and decoder (``*``: the modality's decoder chosen on validation), each
    subject's value with its bootstrap CI, the fMRI ceiling, and the level summary."""
    rows = _shown(table, test_set, metric)
    decoders, scale = _decoders(rows), _percent(metric)
    means, subjects = rows[rows["subject"] == MEAN], rows[rows["subject"] != MEAN]
    header = ["backbone", "features", *(DECODER_LABELS[d] for d in decoders), "chance"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for backbone, group in means.groupby("backbone", sort=False):
        cells = [backbone, str(group["feature_level"].iloc[0])]
        for modality, model in decoders:
            hit = group[(group["modality"] == modality) & (group["model"] == model)]
            if not len(hit):
                cells.append("n/a")
                continue
            mark = "*" if hit["best_on_val"].iloc[0] else ""
            cells.append(f"{scale * hit['value'].iloc[0]:.1f} ± {scale * hit['sd'].iloc[0]:.1f}{mark}")
        cells.append(f"{scale * group['chance'].iloc[0]:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    text = (
        f"{metric_label(metric)}, {test_set}; mean ± SD over subjects; * = the modality's best decoder on "
        "this "
        "backbone, chosen on the validation set\n\n" + "\n".join(lines) + "\n"
    )
    ceiling = table[
        (table["model"] == CEILING) & (table["test_set"] == test_set) & (table["metric"] == metric)
    ]
    if len(ceiling):
        mean = ceiling[ceiling["subject"] == MEAN].iloc[0]
        per = ", ".join(
            f"sub-{r.subject} {scale * r.value:.1f} [{scale * r.ci_low:.1f}, {scale * r.ci_high:.1f}]"
            for r in ceiling[ceiling["subject"] != MEAN].itertuples()
        )
        text += (
            "\nfMRI ceiling (the simulated study's fair ideal observer, image identity): "
            f"{scale * mean.value:.1f} "
            f"± {scale * mean.sd:.1f}; {per}\n"
        )
    text += "\nPer subject: value [95% bootstrap CI over test items]\n\n"
    names = sorted(subjects["subject"].unique())
    lines = [
        "| backbone | decoder | " + " | ".join(f"sub-{s}" for s in names) + " |",
        "|" + "---|" * (2 + len(names)),
    ]
    for backbone, group in subjects.groupby("backbone", sort=False):
        for modality, model in decoders:
            hit = group[(group["modality"] == modality) & (group["model"] == model)].set_index("subject")
            if not len(hit):
                continue
            cells = [
                f"{scale * hit.loc[s, 'value']:.1f} [{scale * hit.loc[s, 'ci_low']:.1f}, "
                f"{scale * hit.loc[s, 'ci_high']:.1f}]"
                if s in hit.index
                else "n/a"
                for s in names
            ]
            lines.append(f"| {backbone} | {DECODER_LABELS[(modality, model)]} | " + " | ".join(cells) + " |")
    text += "\n".join(lines) + "\n"
    if metric.endswith("_acc"):
        summary = level_summary(table, test_set, metric)
        text += (
            "\nDecoder chosen on validation per backbone, (accuracy - chance) / (1 - chance) on test, mean "
            "over "
            "the backbones of each feature level (untrained networks excluded)\n\n| modality | "
            + " | ".join(f"{c}-level" for c in summary.columns)
            + " |\n|"
            + "---|" * (1 + len(summary.columns))
            + "\n"
        )
        for modality, values in summary.iterrows():
            text += f"| {modality} | " + " | ".join(f"{v:.2f}" for v in values) + " |\n"
    return text


def plot_comparison(table: pd.DataFrame, test_set: str, metric: str) -> plt.Figure:
    """Left: the metric per backbone and decoder (bars: subject means; dots: subjects, whiskers: their
    bootstrap CIs; dotted: chance; dashed: the fMRI ceiling); right: the level summary (chance = 0)."""
    style()
    rows = _shown(table, test_set, metric)
    means, subjects = rows[rows["subject"] == MEAN], rows[rows["subject"] != MEAN]
    backbones = list(dict.fromkeys(means.sort_values("feature_level", kind="stable")["backbone"]))
    decoders, scale = _decoders(rows), _percent(metric)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.6, 3.0), gridspec_kw={"width_ratios": [2.3, 1]})
    width = 0.8 / max(len(decoders), 1)
    for k, decoder in enumerate(decoders):
        pick = (means["modality"] == decoder[0]) & (means["model"] == decoder[1])
        sel = means[pick].set_index("backbone")
        x = np.arange(len(backbones)) + (k - (len(decoders) - 1) / 2) * width
        ax.bar(
            x,
            [scale * sel["value"].get(b, np.nan) for b in backbones],
            width,
            color=DECODER_COLOURS[decoder],
            label=DECODER_LABELS[decoder],
        )
        subs = subjects[(subjects["modality"] == decoder[0]) & (subjects["model"] == decoder[1])]
        for i, b in enumerate(backbones):
            one = subs[subs["backbone"] == b]
            if not len(one):
                continue
            offsets = np.linspace(-0.3, 0.3, len(one)) * width
            v = scale * one["value"].to_numpy()
            err = [v - scale * one["ci_low"].to_numpy(), scale * one["ci_high"].to_numpy() - v]
            ax.errorbar(x[i] + offsets, v, yerr=err, fmt="o", ms=2, lw=0.6, color="k", capsize=0)
    chance = means.groupby("backbone")["chance"].first()
    for i, b in enumerate(backbones):
        label = "chance" if i == 0 else None
        ax.hlines(
            scale * chance[b], i - 0.45, i + 0.45, colors="k", linestyles=":", linewidth=0.8, label=label
        )
    ceiling = table[
        (table["model"] == CEILING)
        & (table["test_set"] == test_set)
        & (table["metric"] == metric)
        & (table["subject"] == MEAN)
    ]
    if len(ceiling):
        ax.axhline(scale * ceiling["value"].iloc[0], color="#d95f02", ls="--", lw=0.8, label="fMRI ceiling")
    levels = means.groupby("backbone")["feature_level"].first()
    ax.set_xticks(np.arange(len(backbones)), [f"{b}\n({levels[b]})" for b in backbones])
    ax.set_ylabel(metric_label(metric))
    ax.set_title(f"Retrieval per backbone ({test_set}); dots: subjects, 95% CI")
    ax.legend(frameon=False, fontsize=6, ncol=2)
    if metric.endswith("_acc"):
        summary = level_summary(table, test_set, metric)
        x = np.arange(len(summary))
        for j, level in enumerate(LEVELS):
            if level in summary:
                ax2.bar(
                    x + (j - 0.5) * 0.38,
                    summary[level],
                    0.38,
                    label=f"{level}-level backbones",
                    color=["#66a61e", "#7570b3"][j],
                )
        ax2.set_xticks(x, list(summary.index))
        ax2.axhline(0, color="k", linewidth=0.8, linestyle=":", label="chance")
        ax2.set_ylabel("(acc - chance) / (1 - chance)")
        ax2.set_title("Decoder chosen on validation,\nmean per level")
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
    ceiling_files: Sequence[Path | str] = (),
) -> pd.DataFrame:
    """Write ``tsv`` (every test set, metric, subject), ``md`` (``test_set``, ``metric``), ``png``/``pdf``."""
    table = compare_modalities(meg_files, fmri_files, feature_levels, ceiling_files)
    write_tsv(table, outputs["tsv"])
    with atomic_output(outputs["md"]) as tmp:
        tmp.write_text(comparison_markdown(table, test_set, metric))
    save_figure(plot_comparison(table, test_set, metric), outputs["png"], outputs["pdf"], dpi=dpi)
    return table


# ---- reconstruction: the image metrics of both modalities, split into low- and high-level
#: the field's feature nets (megdecode.metrics.extractors): AlexNet's early layer is low-level
EXTRACTOR_LEVELS = {"alexnet2": "low", "alexnet5": "high", "inception": "high", "clip": "high"}
EXTRACTOR_LEVELS |= {"effnet": "high", "swav": "high"}
#: the simulated world's attribute readout (megdecode.reconstruction.attribute_readout) reads the simulator's
#: own attributes from pixels: a simulation-only check, not one of the paper's high-level metrics
EXTRACTOR_LEVELS |= {"attribute_readout": "simulation"}
#: chance level of a metric family (two-way identification 0.5, PixCorr 0); SSIM and distances have none
METRIC_CHANCE = {"two_way": 0.5, "pixcorr": 0.0}
RECON_COLUMNS = [
    "modality",
    "decoder",
    "generator",
    "metric",
    "level",
    "higher_is_better",
    "subject",
    "value",
]
RECON_COLUMNS += ["ci_low", "ci_high", "sd", "n_subjects", "chance"]


def metric_level(metric: str, feature_levels: Mapping[str, str]) -> str:
    """``low`` for PixCorr, SSIM and features of low-level backbones; ``high`` for the field's semantic nets;
    ``untrained`` for randomly initialised networks; ``simulation`` for the simulated world's attribute
    readout."""
    if metric in ("pixcorr", "ssim"):
        return "low"
    name = metric.removeprefix("two_way_").removesuffix("_distance")
    return feature_levels.get(name, EXTRACTOR_LEVELS.get(name, "low"))


def metric_chance(metric: str) -> float:
    """The chance level of a metric column, NaN where none is defined (SSIM, correlation distances)."""
    for prefix, value in METRIC_CHANCE.items():
        if metric.startswith(prefix):
            return value
    return float("nan")


def compare_reconstruction(
    meg_files: Sequence[Path | str],
    fmri_files: Sequence[Path | str],
    feature_levels: Mapping[str, str],
    decoders: Mapping[str, str],
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (modality, generator, metric): each subject's mean over its test images with a bootstrap CI over
    images, and the mean and SD over subjects (``subject`` = ``mean``).

    ``decoders`` names the decoder whose predictions each modality's generators used (``MEG``, ``fMRI``).
    """
    from megdecode.metrics.retrieval import bootstrap_ci
    from megdecode.seeds import derive_rng

    rows = []
    for modality, files in ((MEG, meg_files), (FMRI, fmri_files)):
        for f in files:
            table = read_metrics(f)
            metrics = [c for c in table.columns if c in ("pixcorr", "ssim") or c.startswith("two_way_")]
            metrics += [c for c in table.columns if c.endswith("_distance")]
            subject, generator = table["subject"].iloc[0], table["generator"].iloc[0]
            for metric in metrics:
                rng = derive_rng(seed, "recon-comparison", modality, generator, subject, metric)
                values = table[metric].to_numpy(float)
                low, high = bootstrap_ci(values, np.mean, n_bootstrap, ci_level, rng)
                rows.append(
                    dict(modality=modality, generator=generator, metric=metric, subject=subject,
                         value=float(values.mean()), ci_low=low, ci_high=high)
                )  # fmt: skip
    df = pd.DataFrame(rows)
    means = (
        df.groupby(["modality", "generator", "metric"], sort=False)
        .agg(value=("value", "mean"), sd=("value", "std"), n_subjects=("subject", "nunique"))
        .reset_index()
        .assign(subject=MEAN)
    )
    means["sd"] = means["sd"].fillna(0.0)
    out = pd.concat([df, means], ignore_index=True)
    out["level"] = out["metric"].map(lambda m: metric_level(m, feature_levels))
    out["higher_is_better"] = ~out["metric"].str.endswith("_distance")
    out["chance"] = out["metric"].map(metric_chance)
    out["decoder"] = out["modality"].map(dict(decoders))
    return out.reindex(columns=RECON_COLUMNS)


def reconstruction_markdown(table: pd.DataFrame) -> str:
    """One row per (generator, metric), MEG and fMRI side by side: mean ± SD over subjects, then each
    subject's mean [95% bootstrap CI over images]."""
    decoders = table.groupby("modality")["decoder"].first()
    lines = [
        "Reconstruction metrics, mean ± SD over subjects (per-subject means over the test images), and per "
        "subject mean [95% bootstrap CI over images]; ↑ higher is better, ↓ lower; chance where defined; "
        f"decoders: MEG {decoders.get(MEG, '?')}, fMRI {decoders.get(FMRI, '?')}. Level 'simulation': the "
        "simulated world's attribute readout (not one of the paper's metrics); 'untrained': a randomly "
        "initialised network.",
        "",
        "| generator | metric | level | chance | MEG | fMRI | MEG per subject | fMRI per subject |",
        "|---|---|---|---|---|---|---|---|",
    ]
    means = table[table["subject"] == MEAN]
    for (generator, metric), group in means.groupby(["generator", "metric"], sort=False):
        arrow = "↑" if group["higher_is_better"].iloc[0] else "↓"
        chance = group["chance"].iloc[0]
        cells, per = [], []
        for modality in (MEG, FMRI):
            hit = group[group["modality"] == modality]
            cells.append(f"{hit['value'].iloc[0]:.3f} ± {hit['sd'].iloc[0]:.3f}" if len(hit) else "n/a")
            subs = table[
                (table["subject"] != MEAN)
                & (table["modality"] == modality)
                & (table["generator"] == generator)
                & (table["metric"] == metric)
            ]
            per.append(
                "; ".join(f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in subs.itertuples())
                or "n/a"
            )
        chance_text = "" if np.isnan(chance) else f"{chance:.2f}"
        lines.append(
            f"| {generator} | {metric} {arrow} | {group['level'].iloc[0]} | {chance_text} | {cells[0]} | "
            f"{cells[1]} | {per[0]} | {per[1]} |"
        )
    return "\n".join(lines) + "\n"


def plot_reconstruction(table: pd.DataFrame) -> plt.Figure:
    """Per generator, the higher-is-better metrics of both modalities, grouped by level: bars are subject
    means, dots the subjects with their bootstrap CIs, short black lines the chance levels."""
    style()
    order = {"low": 0, "untrained": 1, "high": 2, "simulation": 3}
    rows = table[table["higher_is_better"]].sort_values("level", key=lambda s: s.map(order), kind="stable")
    generators = list(dict.fromkeys(rows["generator"]))
    fig, axes = plt.subplots(1, len(generators), figsize=(4.4 * len(generators), 2.8), squeeze=False)
    for ax, generator in zip(axes[0], generators, strict=True):
        sub = rows[rows["generator"] == generator]
        metrics = list(dict.fromkeys(sub["metric"]))
        x = np.arange(len(metrics))
        for k, (modality, colour) in enumerate(((MEG, "#1f77b4"), (FMRI, "#d95f02"))):
            sel = sub[(sub["modality"] == modality) & (sub["subject"] == MEAN)].set_index("metric")
            ax.bar(
                x + (k - 0.5) * 0.38,
                [sel["value"].get(m, np.nan) for m in metrics],
                0.38,
                color=colour,
                label=f"{modality} ({sel['decoder'].iloc[0] if len(sel) else '?'})",
            )
            subs = sub[(sub["modality"] == modality) & (sub["subject"] != MEAN)]
            for i, m in enumerate(metrics):
                one = subs[subs["metric"] == m]
                if len(one):
                    v = one["value"].to_numpy()
                    err = [v - one["ci_low"].to_numpy(), one["ci_high"].to_numpy() - v]
                    xs = x[i] + (k - 0.5) * 0.38 + np.linspace(-0.1, 0.1, len(one))
                    ax.errorbar(xs, v, yerr=err, fmt="o", ms=2, lw=0.6, color="k", capsize=0)
        levels = sub.groupby("metric")["level"].first()
        chance = sub.groupby("metric")["chance"].first()
        for i, m in enumerate(metrics):
            if levels[m] != "low":  # the non-low half on a grey background
                ax.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0)
            if not np.isnan(chance[m]):
                ax.hlines(chance[m], i - 0.45, i + 0.45, colors="k", linestyles=":", linewidth=0.8)
        labels = [f"{m.removeprefix('two_way_').replace('_', chr(10))}\n({levels[m]})" for m in metrics]
        ax.set_xticks(x, labels, fontsize=6)
        ax.set_title(f"Reconstruction: {generator} (dotted: chance)")
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
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """``recon_tsv``, ``recon_md`` and the figure ``recon_png``/``recon_pdf``."""
    table = compare_reconstruction(
        meg_files, fmri_files, feature_levels, decoders, n_bootstrap, ci_level, seed
    )
    write_tsv(table, outputs["recon_tsv"])
    with atomic_output(outputs["recon_md"]) as tmp:
        tmp.write_text(reconstruction_markdown(table))
    save_figure(plot_reconstruction(table), outputs["recon_png"], outputs["recon_pdf"], dpi=dpi)
    return table
