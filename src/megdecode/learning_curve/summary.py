"""Summary of the learning curve: means with CIs, the paired deep-vs-ridge test, log-linear slopes, figure.

Every modality of the run (``modality`` MEG: worlds ``linear`` / ``nonlinear``, decoders brain module and
ridge variants; EEG: the same worlds and decoders; fMRI: world ``7T``, decoders ``mlp`` and ``ridge``): every
table has a ``modality`` column and the figure a column of panels per (modality, world).

The unit of replication is one (subject, seed) pair: each is an independent draw of a subject's trials and
of the decoders' training. Every interval is a percentile bootstrap over these units (items within a unit
are averaged first), so it reflects how much a result varies from one simulated experiment to the next.

- ``summary.tsv``: per (modality, world, backbone, decoder, test set, size, metric) the mean over units, its
  CI and chance;
- ``paired.tsv``: per (modality, world, backbone, test set, size) the deep decoder (``deep``: the brain
  module for MEG and EEG, the voxel MLP for fMRI) minus the best ridge *of the same unit*, where "best ridge"
  is the ridge variant with the higher mean validation top-5 at that size (chosen on validation trials, never
  on a test set);
- ``slopes.tsv``: per (modality, world, backbone, decoder, test set) the least-squares slope of top-5
  accuracy against log10(training trials), in points per tenfold more data (the log-linear scaling of
  Banville et al. 2025).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from megdecode.artifacts.learning_curve import EEG, FMRI, MEG
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, VAL
from megdecode.learning_curve.experiment import BRAIN, CEILINGS, FAIR, ORACLE
from megdecode.learning_curve.fmri import MLP, RIDGE
from megdecode.metrics import retrieval as rm
from megdecode.metrics.retrieval import chance_level

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNIT = ["subject", "seed"]
CELL = ["modality", "world", "backbone", "decoder", "test_set", "n_train"]
DEEP = {MEG: BRAIN, FMRI: MLP, EEG: BRAIN}  # the deep decoder of each modality (paired with its best ridge)
#: the order of the bootstrap draws: adding a modality to a run leaves the earlier ones' intervals unchanged
MODALITY_ORDER = (MEG, FMRI, EEG)
PANEL = ["modality", "world"]
METRICS = ("top5_acc", "top1_acc", "median_rank")
PRIMARY = ("top5_acc", TEST_LARGE)


def unit_means(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (unit, cell): items averaged (median for the median rank), plus the gallery size."""
    grouped = scores.groupby(CELL + UNIT, sort=True)
    out = grouped[["top5_acc", "top1_acc"]].mean()
    out["median_rank"] = grouped["median_rank"].median()
    out["gallery"] = grouped["image_id"].nunique()
    return out.reset_index()


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int, level: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over units; NaNs with fewer than 2 units or no draws."""
    if len(values) < 2 or n_boot < 1:
        return float("nan"), float("nan")
    return rm.bootstrap_ci(values, np.mean, n_boot, level, rng)


def summary_table(units: pd.DataFrame, n_boot: int, level: float, seed: int) -> pd.DataFrame:
    """Mean over units and bootstrap CI per cell and metric, with chance from the gallery size."""
    rows = []
    rng = np.random.default_rng(seed)
    for cell, part in _in_modality_order(units.groupby(CELL, sort=True)):
        gallery = int(part["gallery"].max())
        for metric in METRICS:
            values = part[metric].to_numpy(float)
            low, high = bootstrap_mean_ci(values, n_boot, level, rng)
            chance = chance_level(metric, gallery)
            rows.append(
                dict(zip(CELL, cell, strict=True))
                | dict(metric=metric, mean=values.mean(), ci_low=low, ci_high=high, chance=chance)
                | dict(n_units=len(values), gallery=gallery)
            )
    return pd.DataFrame(rows)


def best_ridge(units: pd.DataFrame) -> pd.DataFrame:
    """Per (modality, world, backbone, size): the ridge variant with the highest mean validation top-5."""
    val = units[(units["test_set"] == VAL) & units["decoder"].str.startswith("ridge")]
    keys = [*PANEL, "backbone", "n_train"]
    means = val.groupby([*keys, "decoder"])["top5_acc"].mean().reset_index()
    best = means.sort_values(["top5_acc", "decoder"], ascending=[False, True]).drop_duplicates(keys)
    return best.rename(columns={"decoder": "best_ridge", "top5_acc": "best_ridge_val_top5"})


def paired_table(
    units: pd.DataFrame, n_boot: int, level: float, seed: int, metrics: Sequence[str] = ("top5_acc",)
) -> pd.DataFrame:
    """Deep decoder (:data:`DEEP`) minus best ridge per unit; mean difference with bootstrap CI and the share
    of units it wins."""
    best = best_ridge(units)
    rng = np.random.default_rng(seed)
    rows = []
    tests = units[units["test_set"].isin([TEST_SMALL, TEST_LARGE])]
    # in MODALITY_ORDER, each modality's rows in their own order
    best = best.sort_values("modality", key=lambda m: m.map(MODALITY_ORDER.index), kind="stable")
    for _, pick in best.iterrows():
        key = (tests["modality"] == pick.modality) & (tests["world"] == pick.world)
        key &= (tests["backbone"] == pick.backbone) & (tests["n_train"] == pick.n_train)
        deep = DEEP.get(pick.modality, BRAIN)
        for test_set in (TEST_LARGE, TEST_SMALL):
            at = tests[key & (tests["test_set"] == test_set)]
            brain = at[at["decoder"] == deep].set_index(UNIT)
            ridge = at[at["decoder"] == pick.best_ridge].set_index(UNIT)
            common = brain.index.intersection(ridge.index)
            if common.empty:
                continue
            for metric in metrics:
                diff = (brain.loc[common, metric] - ridge.loc[common, metric]).to_numpy(float)
                if metric == "median_rank":
                    diff = -diff  # positive = brain better, for every metric
                low, high = bootstrap_mean_ci(diff, n_boot, level, rng)
                rows.append(
                    dict(modality=pick.modality, world=pick.world, backbone=pick.backbone, test_set=test_set)
                    | dict(n_train=pick.n_train, metric=metric, deep=deep, best_ridge=pick.best_ridge)
                    | dict(deep_minus_ridge=diff.mean(), ci_low=low, ci_high=high)
                    | dict(deep_wins=float((diff > 0).mean()), n_units=len(diff))
                )
    return pd.DataFrame(rows)


def _in_modality_order(groups: Any) -> list[tuple[tuple, pd.DataFrame]]:
    """(key, part) pairs of a groupby whose first key is the modality, in :data:`MODALITY_ORDER` (stable)."""
    return sorted(groups, key=lambda kv: MODALITY_ORDER.index(kv[0][0]))


def _slope(log_n: np.ndarray, values: np.ndarray) -> float:
    return float(np.polyfit(log_n, values, 1)[0]) if len(np.unique(log_n)) > 1 else float("nan")


def slopes_table(units: pd.DataFrame, n_boot: int, level: float, seed: int) -> pd.DataFrame:
    """Slope of top-5 accuracy (points, i.e. x100) per decade of training trials, bootstrap over units."""
    rng = np.random.default_rng(seed)
    rows = []
    trained = units[~units["decoder"].isin(CEILINGS) & units["test_set"].isin([TEST_SMALL, TEST_LARGE])]
    groups = [*PANEL, "backbone", "decoder", "test_set"]
    for key, part in _in_modality_order(trained.groupby(groups, sort=True)):
        curves = part.pivot_table(index=UNIT, columns="n_train", values="top5_acc").dropna()
        log_n = np.log10(curves.columns.to_numpy(float))
        values = 100 * curves.to_numpy(float)  # (units, sizes)
        slope = _slope(np.tile(log_n, len(values)), values.reshape(-1))
        draws = [
            _slope(np.tile(log_n, len(values)), values[rng.integers(0, len(values), len(values))].reshape(-1))
            for _ in range(n_boot if len(values) > 1 else 0)
        ]
        alpha = (1 - level) / 2
        low, high = np.quantile(draws, [alpha, 1 - alpha]) if draws else (float("nan"), float("nan"))
        rows.append(
            dict(zip(groups, key, strict=True))
            | dict(points_per_decade=slope, ci_low=float(low), ci_high=float(high), n_units=len(values))
        )
    return pd.DataFrame(rows)


def percent(value: float, sign: str = "") -> str:
    """A fraction as a percentage with one decimal (``sign='+'`` for differences); NaN as a dash."""
    return "–" if not np.isfinite(value) else f"{100 * value:{sign}.1f}"


def _signed(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:+.1f}"


def panel_title(modality: str, world: str) -> str:
    """``MEG, linear world`` / ``fMRI, simulated 7T``: a (modality, world) panel or section."""
    return f"{modality}, simulated {world}" if modality == FMRI else f"{modality}, {world} world"


def panels(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The (modality, world) pairs of ``frame``: MEG first, then EEG, then fMRI."""
    pairs = frame[PANEL].drop_duplicates().itertuples(index=False, name=None)
    return sorted(pairs, key=lambda mw: (mw[0] != MEG, mw[0], mw[1]))


#: How the report names each ceiling (they train on nothing: one number per panel).
CEILING_LABELS = {
    ORACLE: "image oracle (knows each test image's noiseless response, test concepts' codes included)",
    FAIR: "fair ceiling (knows only what the training concepts teach)",
}


def _ceilings_sentence(in_panel: pd.DataFrame) -> str:
    parts = [
        f"{CEILING_LABELS[c]} `{c}`: {percent(in_panel.loc[in_panel.decoder == c, 'mean'].mean())}"
        for c in CEILINGS
        if (in_panel.decoder == c).any()
    ]
    return f"Ceilings (train on nothing): {'; '.join(parts)}; " if parts else ""


def markdown_report(summary: pd.DataFrame, paired: pd.DataFrame, slopes: pd.DataFrame, level: float) -> str:
    """The experiment's tables in Markdown: top-5 per size (both test sets), the paired test, the slopes."""
    ci = f"{round(100 * level)}% CI"
    lines = ["# Learning curve", ""]
    top5 = summary[summary["metric"] == "top5_acc"]
    for test_set in (TEST_LARGE, TEST_SMALL):
        at = top5[top5["test_set"] == test_set]
        for modality, world in panels(at):
            in_panel = at[(at.modality == modality) & (at.world == world)]
            deep = DEEP.get(modality, BRAIN)
            for backbone, part in in_panel[in_panel.backbone != ""].groupby("backbone"):
                decoders = sorted(part["decoder"].unique(), key=lambda d: (d != deep, d))
                lines += [
                    f"## {panel_title(modality, world)}, {backbone}, {test_set.replace('_', ' ')}: "
                    "top-5 accuracy (%)",
                    "",
                    f"Mean over (subject, seed) units [{ci}]. {_ceilings_sentence(in_panel)}"
                    f"chance {percent(part['chance'].iloc[0])}.",
                    "",
                    "| training trials | " + " | ".join(decoders) + f" | {deep} - best ridge |",
                    "|---:|" + "---:|" * (len(decoders) + 1),
                ]
                pair = paired[
                    (paired.modality == modality)
                    & (paired.world == world)
                    & (paired.backbone == backbone)
                    & (paired.test_set == test_set)
                ]
                for n_train, row in part.groupby("n_train"):
                    cells = []
                    for decoder in decoders:
                        r = row[row.decoder == decoder].iloc[0]
                        cells.append(f"{percent(r['mean'])} [{percent(r.ci_low)}, {percent(r.ci_high)}]")
                    p = pair[(pair.n_train == n_train) & (pair.metric == "top5_acc")]
                    diff = (
                        f"{percent(p.deep_minus_ridge.iloc[0], '+')} [{percent(p.ci_low.iloc[0], '+')}, "
                        f"{percent(p.ci_high.iloc[0], '+')}] vs {p.best_ridge.iloc[0]}"
                        if len(p)
                        else "–"
                    )
                    lines.append(f"| {n_train} | " + " | ".join(cells) + f" | {diff} |")
                lines.append("")
    lines += [
        "## Log-linear slopes: top-5 points per tenfold more training trials",
        "",
        f"| modality | world | backbone | decoder | test set | slope [{ci}] |",
        "|---|---|---|---|---|---:|",
    ]
    for r in slopes.itertuples():
        lines.append(
            f"| {r.modality} | {r.world} | {r.backbone} | {r.decoder} | {r.test_set} | "
            f"{_signed(r.points_per_decade)} [{_signed(r.ci_low)}, {_signed(r.ci_high)}] |"
        )
    return "\n".join(lines) + "\n"


# (colour, line style, marker) per decoder: deep decoders blue, MEG's ridge variants C1, C2.. (in name
# order), fMRI's ridge C1; fMRI's lines dashed, EEG's dotted
DECODER_STYLE = {BRAIN: ("C0", "-", "o"), MLP: ("C0", "--", "o"), RIDGE: ("C1", "--", "s")}
DECODER_STYLE[ORACLE] = ("k", "--", None)
DECODER_STYLE[FAIR] = ("k", "-.", None)


def plot_learning_curve(summary: pd.DataFrame, png: Path | str, pdf: Path | str, dpi: int = 150) -> None:
    """Write :func:`draw_learning_curve` as PNG and PDF."""
    from megdecode.reporting.common import save_figure

    save_figure(draw_learning_curve(summary), png, pdf, dpi)


def draw_learning_curve(summary: pd.DataFrame) -> Figure:
    """Top-5 accuracy vs training trials (log x), a panel per (test set, (modality, world)): CI bands, the
    ceilings, chance. MEG's worlds first, then EEG's (its lines dotted), then fMRI's (dashed)."""
    import matplotlib.pyplot as plt

    from megdecode.reporting.common import style

    style()
    top5 = summary[summary["metric"] == "top5_acc"]
    columns = panels(top5)
    test_sets = [t for t in (TEST_LARGE, TEST_SMALL) if t in set(top5["test_set"])]
    fig, axes = plt.subplots(
        len(test_sets), len(columns), figsize=(4.2 * len(columns), 3.4 * len(test_sets)), squeeze=False
    )
    ridge_colours = iter(["C1", "C2", "C3", "C4", "C5"])
    styles = dict(DECODER_STYLE)
    for decoder in sorted(d for d in top5["decoder"].unique() if d.startswith("ridge_")):
        styles[decoder] = (next(ridge_colours), "-", "s")
    for i, test_set in enumerate(test_sets):
        for j, (modality, world) in enumerate(columns):
            ax = axes[i, j]
            part = top5[(top5.modality == modality) & (top5.world == world) & (top5.test_set == test_set)]
            sizes = sorted(n for n in part["n_train"].unique() if n > 0)
            # the span of the levels (ceilings, chance): the sizes, widened when there is one
            span = (
                (sizes[0], sizes[-1]) if len(sizes) > 1 else (sizes[0] / 1.5, sizes[0] * 1.5) if sizes else ()
            )
            trained = part[~part.decoder.isin(CEILINGS)]
            for (decoder, backbone), curve in trained.groupby(["decoder", "backbone"]):
                colour, line, marker = styles[decoder]
                line = {FMRI: "--", EEG: ":"}.get(modality, line)
                curve = curve.sort_values("n_train")
                label = decoder if part["backbone"].nunique() <= 2 else f"{decoder} ({backbone})"
                ax.plot(curve.n_train, 100 * curve["mean"], line, color=colour, marker=marker, label=label)
                ax.fill_between(
                    curve.n_train, 100 * curve.ci_low, 100 * curve.ci_high, color=colour, alpha=0.2
                )
            for ceiling in CEILINGS:
                level = part.loc[part.decoder == ceiling, "mean"]
                if len(level) and sizes:
                    _, line, _ = DECODER_STYLE[ceiling]
                    ax.hlines(100 * level.mean(), *span, colors="k", linestyles=line, label=ceiling)
            if sizes:
                ax.hlines(100 * part["chance"].iloc[0], *span, colors="grey", linestyles=":", label="chance")
            ax.set_xscale("log")
            ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
            ax.set_xticks([], minor=True)  # the log axis' minor labels (3x10^2, ...) overlap the sizes
            ax.set_title(f"{panel_title(modality, world)}, {test_set.replace('_', ' ')}")
            ax.set_xlabel("training trials per subject")
            ax.set_ylabel("top-5 accuracy (%)")
            ax.set_ylim(0, 100)
            if i == 0:
                ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def learning_curve_summary(
    score_paths: Sequence[Path | str],
    outputs: Mapping[str, Path | str],
    cfg: Mapping[str, Any],
    seed: int,
    dpi: int = 150,
) -> pd.DataFrame:
    """The summary rule's job: read every job's scores, write ``summary``, ``paired``, ``slopes`` (TSV), the
    Markdown report and the figure (``png``, ``pdf``). ``cfg``: the ``learning_curve`` slice."""
    from megdecode import io
    from megdecode.artifacts.learning_curve import ITEM_KEYS, read_scores

    n_boot, level = int(cfg["n_bootstrap"]), float(cfg["ci_level"])
    scores = pd.concat([read_scores(p) for p in score_paths], ignore_index=True)
    # the ceilings' rows repeat in every size's file of a unit
    units = unit_means(scores.drop_duplicates(subset=ITEM_KEYS))  # MEG files lack modality: read_scores
    summary = summary_table(units, n_boot, level, seed)
    paired = paired_table(units, n_boot, level, seed, metrics=("top5_acc", "median_rank"))
    slopes = slopes_table(units, n_boot, level, seed)
    io.write_tsv(summary, outputs["summary"])
    io.write_tsv(paired, outputs["paired"])
    io.write_tsv(slopes, outputs["slopes"])
    with io.atomic_output(outputs["report"]) as tmp:
        Path(tmp).write_text(markdown_report(summary, paired, slopes, level))
    plot_learning_curve(summary, outputs["png"], outputs["pdf"], dpi)
    return summary
