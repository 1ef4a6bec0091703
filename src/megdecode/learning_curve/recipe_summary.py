"""The recipe study's summary: per variant and size, the brain module against the best ridge of its validation
type, paired per unit (subject x seed), with bootstrap CIs over units, the ceilings and the epochs used.

The best ridge (time bin) is chosen per (validation type, size) on the mean *validation* top-5 over units;
test sets never choose anything. Both early-stopping criteria of a variant are reported; the table's headline
uses the variant's chosen one (fixed, or chosen by its selection job on held-out training concepts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL, VAL
from megdecode.learning_curve.recipe import SELECT
from megdecode.learning_curve.summary import bootstrap_mean_ci, percent

UNIT = ["subject", "seed"]
KEYS = ["world", "n_train", "validation", "variant", "decoder", "stop_on", "test_set"]


def unit_means(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (unit, decoder cell): top-5 averaged over items, epochs as run."""
    grouped = scores.groupby(KEYS + UNIT, sort=True, dropna=False)
    out = grouped[["top5_acc", "top1_acc"]].mean()
    out["chosen"] = grouped["chosen"].first()
    out["epochs"] = grouped["epochs"].first()
    out["best_epoch"] = grouped["best_epoch"].first()
    out["lr"] = grouped["lr"].first()
    return out.reset_index()


def best_ridge(units: pd.DataFrame) -> pd.DataFrame:
    """Per (world, size, validation type): the ridge time bin with the highest mean validation top-5."""
    val = units[(units["test_set"] == VAL) & units["decoder"].str.startswith("ridge")]
    keys = ["world", "n_train", "validation"]
    means = val.groupby([*keys, "decoder"])["top5_acc"].mean().reset_index()
    best = means.sort_values(["top5_acc", "decoder"], ascending=[False, True]).drop_duplicates(keys)
    return best.rename(columns={"decoder": "best_ridge", "top5_acc": "ridge_val_top5"})


def _unit_values(units: pd.DataFrame, **match: Any) -> pd.Series:
    part = units
    for column, value in match.items():
        part = part[part[column] == value]
    return part.set_index(UNIT)["top5_acc"]


def recipe_table(units: pd.DataFrame, n_boot: int, level: float, seed: int) -> pd.DataFrame:
    """One row per (world, size, variant, criterion, test set): the brain module's mean top-5 and CI, the
    best ridge's, their paired difference with CI and units won, the ceilings, epochs and learning rate."""
    rng = np.random.default_rng(seed)
    best = best_ridge(units).set_index(["world", "n_train", "validation"])
    brain = units[units["decoder"] == "brain"]
    rows = []
    cells = brain.groupby(["world", "n_train", "variant", "stop_on", "test_set"], sort=True)
    for (world, n_train, variant, stop_on, test_set), part in cells:
        if test_set not in (TEST_SMALL, TEST_LARGE):
            continue
        validation = part["validation"].iloc[0]
        ridge_name = best.loc[(world, n_train, validation), "best_ridge"]
        at = dict(world=world, n_train=n_train, test_set=test_set)
        ridge = _unit_values(units, **at, validation=validation, decoder=ridge_name)
        deep = part.set_index(UNIT)["top5_acc"]
        common = deep.index.intersection(ridge.index)
        diff = (deep.loc[common] - ridge.loc[common]).to_numpy(float)
        low, high = bootstrap_mean_ci(diff, n_boot, level, rng)
        ceilings = {
            name: _unit_values(units, world=world, test_set=test_set, decoder=name)
            .groupby(level=UNIT)
            .first()
            .mean()
            for name in sorted(set(units["decoder"]) - {"brain"})
            if not name.startswith("ridge")
        }
        rows.append(
            dict(world=world, n_train=n_train, variant=variant, validation=validation, stop_on=stop_on)
            | dict(chosen=bool(part["chosen"].all()), test_set=test_set, brain=deep.mean())
            | dict(best_ridge=ridge_name, ridge=ridge.loc[common].mean(), brain_minus_ridge=diff.mean())
            | dict(ci_low=low, ci_high=high, brain_wins=int((diff > 0).sum()), n_units=len(diff))
            | {f"ceiling_{k.removeprefix('ceiling_')}": v for k, v in ceilings.items()}
            | dict(epochs=part["epochs"].mean(), best_epoch=part["best_epoch"].mean(), lr=part["lr"].iloc[0])
        )
    return pd.DataFrame(rows)


def markdown_report(table: pd.DataFrame, choices: Sequence[Mapping[str, Any]], level: float) -> str:
    """The study's table (chosen criteria first, then the other criterion) and the selection jobs' choices."""
    pct = f"{round(100 * level)}%"
    lines = [
        "# Recipe study",
        "",
        f"Top-5 accuracy (%); brain - ridge paired per unit (subject x seed), {pct} bootstrap CI over units; "
        "the ridge time bin chosen on validation per validation type and size.",
        "",
    ]
    ceilings = [c for c in table.columns if c.startswith("ceiling_")]
    head = [
        "world",
        "trials",
        "variant",
        "validation",
        "stop on",
        "lr",
        "set",
        "brain",
        "best ridge",
        "brain - ridge",
    ]
    head += ["units won", *[c.removeprefix("ceiling_") for c in ceilings], "epochs (best)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = table.sort_values(
        ["world", "n_train", "variant", "chosen", "test_set"], ascending=[True, True, True, False, True]
    )
    for r in order.itertuples():
        stop = r.stop_on + ("" if r.chosen else " (not chosen)")
        cells = [
            r.world,
            f"{r.n_train:,}",
            r.variant,
            r.validation,
            stop,
            f"{r.lr:g}",
            r.test_set.replace("test_", ""),
        ]
        cells += [percent(r.brain), f"{percent(r.ridge)} ({r.best_ridge})"]
        cells += [
            f"{percent(r.brain_minus_ridge, '+')} [{percent(r.ci_low, '+')}, {percent(r.ci_high, '+')}]"
        ]
        cells += [f"{r.brain_wins}/{r.n_units}", *[percent(getattr(r, c)) for c in ceilings]]
        cells += [f"{r.epochs:.0f} ({r.best_epoch:.0f})"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if choices:
        lines += ["", "## Choices made on the selection set (held-out training concepts of one unit)", ""]
        for c in choices:
            cands = ", ".join(
                f"{x['stop_on']} @ lr {x['lr']:g}: {percent(x['select_top5_acc'])}" for x in c["candidates"]
            )
            lines.append(
                f"- {c['variant']} ({c['world']}, sub-{c['subject']}, {c['n_train']:,} trials): "
                f"stop on {c['stop_on']}, lr {c['lr']:g} (selection top-5 {cands})"
            )
    return "\n".join(lines) + "\n"


def plot_recipe(table: pd.DataFrame, png: Path | str, dpi: int = 150) -> None:
    """Brain - best ridge (large and small test sets) per variant and size, chosen criteria, with CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from megdecode import io

    chosen = table[table["chosen"]]
    sets = [s for s in (TEST_LARGE, TEST_SMALL) if s in set(chosen["test_set"])]
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.6), squeeze=False)
    for ax, test_set in zip(axes[0], sets, strict=True):
        part = chosen[chosen["test_set"] == test_set]
        variants = sorted(set(part["variant"]))
        sizes = sorted(set(part["n_train"]))
        width = 0.8 / max(len(sizes), 1)
        for j, n in enumerate(sizes):
            at = part[part["n_train"] == n].set_index("variant").reindex(variants)
            x = np.arange(len(variants)) + (j - (len(sizes) - 1) / 2) * width
            err = (
                np.vstack([at["brain_minus_ridge"] - at["ci_low"], at["ci_high"] - at["brain_minus_ridge"]])
                * 100
            )
            ax.errorbar(
                x,
                at["brain_minus_ridge"] * 100,
                yerr=np.nan_to_num(err),
                fmt="o",
                capsize=3,
                label=f"{n:,} trials",
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(np.arange(len(variants)), variants)
        ax.set_ylabel("brain - best ridge, top-5 (points)")
        ax.set_title(test_set.replace("_", " "))
        ax.legend(fontsize=7)
    fig.tight_layout()
    with io.atomic_output(png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def recipe_study_summary(
    score_paths: Sequence[Path | str],
    choice_paths: Sequence[Path | str],
    outputs: Mapping[str, Path | str],
    cfg: Mapping[str, Any],
    seed: int,
) -> pd.DataFrame:
    """The summary rule's job: ``summary`` (TSV), ``report`` (Markdown) and ``png``."""
    from megdecode import io
    from megdecode.artifacts.recipe_study import read_choice, read_scores

    scores = pd.concat([read_scores(p) for p in score_paths], ignore_index=True)
    table = recipe_table(unit_means(scores), int(cfg["n_bootstrap"]), float(cfg["ci_level"]), seed)
    io.write_tsv(table, outputs["summary"])
    with io.atomic_output(outputs["report"]) as tmp:
        Path(tmp).write_text(
            markdown_report(table, [read_choice(p) for p in choice_paths], float(cfg["ci_level"]))
        )
    plot_recipe(table, outputs["png"])
    return table


def crosscheck_table(
    scores: pd.DataFrame,
    selection_unit: Mapping[str, Any],
    order: Sequence[str],
    n_boot: int,
    level: float,
    seed: int,
) -> pd.DataFrame:
    """The variants' unit models (chosen criterion) on the selection set, which no unit model was trained or
    stopped on: per (world, size, and all sizes pooled) each variant's mean top-5 over units, and every pair's
    paired difference (``variant`` - ``versus``) with a bootstrap CI and units won. The selection unit is left
    out: its selection set chose the candidate settings."""
    rng = np.random.default_rng(seed)
    sel = scores[(scores["test_set"] == SELECT) & scores["chosen"]]
    units = sel.groupby(["world", "variant", "n_train", *UNIT], sort=True)["top5_acc"].mean().reset_index()
    chooser = (
        (units["subject"] == str(selection_unit["subject"]))
        & (units["seed"] == int(selection_unit["seed"]))
        & (units["n_train"] == int(selection_unit["n_train"]))
    )
    units = units[~chooser].assign(size=units["n_train"].astype(str))
    pooled = units.assign(size="all")
    rows = []
    for (world, size), part in pd.concat([units, pooled]).groupby(["world", "size"], sort=False):
        values = {
            v: part[part["variant"] == v].set_index([*UNIT, "n_train"])["top5_acc"]
            for v in order
            if v in set(part["variant"])
        }
        names = list(values)
        pairs = [(v, "") for v in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        for a, b in pairs:
            common = values[a].index if not b else values[a].index.intersection(values[b].index)
            diff = values[a].loc[common].to_numpy(float)
            if b:
                diff = diff - values[b].loc[common].to_numpy(float)
            low, high = bootstrap_mean_ci(diff, n_boot, level, rng)
            rows.append(
                dict(world=world, n_train=size, variant=a, versus=b, top5_acc=diff.mean())
                | dict(ci_low=low, ci_high=high, wins=int((diff > 0).sum()) if b else -1, n_units=len(diff))
            )
    return pd.DataFrame(rows)


def crosscheck_report(table: pd.DataFrame, level: float) -> str:
    """The cross-check's tables: each variant's selection-set top-5, then the paired differences."""
    pct = f"{round(100 * level)}%"
    lines = [
        "# Recipe study: the variants on the selection set",
        "",
        "Top-5 accuracy (%) of each variant's unit models (chosen criterion) on the selection set: held-out "
        "training concepts that no unit model was trained or stopped on. The selection unit is left out. "
        f"{pct} bootstrap CIs over units (subject x seed x size).",
        "",
        "| world | trials | variant | versus | top-5 / difference | CI | units won |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        sign = "+" if r.versus else ""
        won = f"{r.wins}/{r.n_units}" if r.versus else f"({r.n_units} units)"
        ci = f"[{percent(r.ci_low, sign)}, {percent(r.ci_high, sign)}]"
        lines.append(
            f"| {r.world} | {r.n_train} | {r.variant} | {r.versus or '-'} | {percent(r.top5_acc, sign)} | "
            f"{ci} | {won} |"
        )
    return "\n".join(lines) + "\n"


def recipe_crosscheck_summary(
    score_paths: Sequence[Path | str],
    outputs: Mapping[str, Path | str],
    cfg: Mapping[str, Any],
    seed: int,
) -> pd.DataFrame:
    """The cross-check summary rule's job: ``crosscheck_table`` (TSV) and ``crosscheck_report`` (Markdown)."""
    from megdecode import io
    from megdecode.artifacts.recipe_study import read_scores

    scores = pd.concat([read_scores(p) for p in score_paths], ignore_index=True)
    level = float(cfg["ci_level"])
    table = crosscheck_table(scores, cfg["selection"], cfg["variants"], int(cfg["n_bootstrap"]), level, seed)
    io.write_tsv(table, outputs["crosscheck_table"])
    with io.atomic_output(outputs["crosscheck_report"]) as tmp:
        Path(tmp).write_text(crosscheck_report(table, level))
    return table
