"""Two runs of the learning curve compared cell by cell, paired per unit (a probe against the main run).

A probe (for example ``config/learning-curve-longer.yaml``) repeats some of the main run's jobs with one
thing changed. Job keys do not depend on the recipe, so both runs have the same trials and initialisations
per (subject, seed): the difference is paired. Decoders the probe did not change (ridge, the ceilings) must
come out identical, which the table shows as a difference of exactly zero.

    python -m megdecode.learning_curve.compare results-learning-curve results-learning-curve-longer
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from megdecode.artifacts.learning_curve import ITEM_KEYS, find_scores, read_scores
from megdecode.artifacts.splits import TEST_LARGE, TEST_SMALL
from megdecode.learning_curve.summary import CELL, UNIT, bootstrap_mean_ci, percent, unit_means

RUNS = ("base", "probe")


def run_units(results_dir: Path | str) -> pd.DataFrame:
    """Unit means of every job of one run, with the brain module's mean training length per unit and cell."""
    paths = find_scores(results_dir)
    if not paths:
        raise FileNotFoundError(
            f"no learning-curve scores under {results_dir}; "
            "run `snakemake learning_curve` with its config first"
        )
    scores = pd.concat([read_scores(p) for p in paths], ignore_index=True).drop_duplicates(subset=ITEM_KEYS)
    units = unit_means(scores)
    epochs = scores.groupby(CELL + UNIT)[["epochs", "best_epoch"]].mean().reset_index()
    return units.merge(epochs, on=CELL + UNIT, how="left")


def compare_runs(
    base: pd.DataFrame,
    probe: pd.DataFrame,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    test_sets: Sequence[str] = (TEST_LARGE, TEST_SMALL),
) -> pd.DataFrame:
    """Per cell in both runs: base and probe means of top-5, the paired probe-minus-base difference with a
    bootstrap CI over units, the share of units the probe improves (``identical``: no unit changed at all),
    and the brain's mean (best) epochs."""
    rng = np.random.default_rng(seed)
    merged = base.merge(probe, on=CELL + UNIT, suffixes=tuple(f"_{run}" for run in RUNS))
    merged = merged[merged["test_set"].isin(test_sets)]
    rows = []
    for cell, part in merged.groupby(CELL, sort=True):
        diff = (part["top5_acc_probe"] - part["top5_acc_base"]).to_numpy(float)
        low, high = bootstrap_mean_ci(diff, n_boot, level, rng)
        rows.append(
            dict(zip(CELL, cell, strict=True))
            | dict(top5_base=part["top5_acc_base"].mean(), top5_probe=part["top5_acc_probe"].mean())
            | dict(probe_minus_base=diff.mean(), ci_low=low, ci_high=high)
            | dict(probe_better=float((diff > 0).mean()), identical=bool((diff == 0).all()))
            | dict(n_units=len(diff))
            | {f"{k}_{run}": part[f"{k}_{run}"].mean() for k in ("epochs", "best_epoch") for run in RUNS}
        )
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame, level: float = 0.95) -> str:
    """The comparison as Markdown, top-5 in percent."""

    def num(value: float) -> str:
        return "–" if not np.isfinite(value) else f"{value:.1f}"

    ci = f"{round(100 * level)}% CI"
    lines = [
        "| world | backbone | decoder | test set | trials | base | probe "
        f"| probe - base [{ci}] | units better | epochs (best) base | epochs (best) probe |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.world} | {row.backbone or '–'} | {row.decoder} | {row.test_set} | {row.n_train} "
            f"| {percent(row.top5_base)} | {percent(row.top5_probe)} "
            f"| {percent(row.probe_minus_base, '+')} "
            f"[{percent(row.ci_low, '+')}, {percent(row.ci_high, '+')}] "
            f"| {'identical' if row.identical else f'{round(row.probe_better * row.n_units)}/{row.n_units}'} "
            f"| {num(row.epochs_base)} ({num(row.best_epoch_base)}) "
            f"| {num(row.epochs_probe)} ({num(row.best_epoch_probe)}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="results_dir of the main run")
    parser.add_argument("probe", help="results_dir of the probe")
    parser.add_argument("--n-bootstrap", type=int, default=2000)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    table = compare_runs(run_units(args.base), run_units(args.probe), args.n_bootstrap, args.level, args.seed)
    print(markdown_table(table, args.level), end="")


if __name__ == "__main__":
    main()
