"""What the report's tables and figures share: settings, labels, colours, and the figure writer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from megdecode.config import dataclass_from_section  # noqa: E402
from megdecode.io import atomic_output  # noqa: E402

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
    """Presentation settings (config section ``report``; the example choice is the plan's)."""

    dpi: int
    table_test_sets: tuple[str, ...]
    table_metrics: tuple[str, ...]
    n_example_trials: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ReportSettings:
        values = {k: v for k, v in cfg.items() if not k.startswith("example_")}
        s = dataclass_from_section(cls, values, "report")
        return cls(int(s.dpi), tuple(s.table_test_sets), tuple(s.table_metrics), int(s.n_example_trials))


def metric_label(metric: str) -> str:
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    if metric.startswith("top") and metric.endswith("_acc"):
        return f"top-{metric[3:-4]} accuracy (%)"
    return metric


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


def style() -> None:
    plt.rcParams.update(
        {"font.size": 8, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}
    )
