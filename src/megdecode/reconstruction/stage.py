"""Workflow entry points of the reconstruction stage: generate, score, summarise.

- :func:`reconstruct_subject` (rule ``reconstruct``): one subject's predictions -> one generator's images.
- :func:`score_subject` (rule ``reconstruction_metrics``): images -> per-image metrics, best/median/worst.
- :func:`summarise` (rule ``reconstruction_summary``): all metrics -> one summary beside the paper's numbers.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.latents import read_latents, read_meta
from megdecode.artifacts.reconstruction import (
    ID_COLUMNS,
    read_metrics,
    read_reconstructions,
    write_metrics,
    write_png_folder,
    write_reconstructions,
)
from megdecode.artifacts.stimuli import read_stimuli, train_image_ids
from megdecode.io import atomic_output, write_tsv
from megdecode.metrics import image as im
from megdecode.plan import NON_IMAGE_KINDS
from megdecode.reconstruction.attribute_readout import METRIC_NAME as ATTRIBUTE_READOUT
from megdecode.reconstruction.base import Predicted, load_images, load_predictions, resize_images
from megdecode.seeds import derive_seed

log = logging.getLogger(__name__)

GENERATORS = ("decoder", "retrieval", "versatile_diffusion")

#: The paper's THINGS-MEG reconstruction numbers (as tabulated by ATM; DESIGN.md, provenance [S]).
PAPER_THINGS_MEG: dict[str, float] = {
    "pixcorr": 0.058,
    "ssim": 0.327,
    "two_way_alexnet2": 0.695,
    "two_way_alexnet5": 0.753,
    "two_way_inception": 0.593,
    "two_way_clip": 0.700,
    "swav_distance": 0.630,
}
PAPER_LABEL = "paper (Benchetrit et al. 2023, THINGS-MEG, as reported by ATM; not reproduced here)"
#: The resolution at which the field's evaluation code (MindEye's, used by the papers above) compares images.
PAPER_IMAGE_PX = 425


def reconstruct_subject(
    generator: str,
    cfg: Mapping[str, Any],
    predictions: Mapping[str, str],
    stimuli_tsv: str,
    images_root: str,
    out_npz: str,
    out_images: str,
    seed: int,
    subject: str,
    latents_dirs: Mapping[str, str] | None = None,
    decoder_model: str | None = None,
    decoder_meta: str | None = None,
) -> None:
    """Rule ``reconstruct``: write ``reconstructions.npz`` (``images`` uint8, ``image_id``,
    ``retrieved_id`` for retrieval) and one PNG per test image under ``out_images``."""
    split = cfg["split"]
    preds: dict[str, Predicted] = {b: load_predictions(p, split) for b, p in predictions.items()}
    latents_dirs = dict(latents_dirs or {})
    primary = next(iter(preds))  # the plan lists the primary backbone first
    ids = preds[primary].image_id.tolist()
    log.info(
        "%s for sub-%s: %d %s images from backbone(s) %s", generator, subject, len(ids), split, list(preds)
    )
    extra: dict[str, np.ndarray] = {}
    if generator == "decoder":
        from megdecode.reconstruction.decoder import DecoderGenerator

        clip = bool(cfg["clip_predictions"])
        images = DecoderGenerator(decoder_model, decoder_meta, clip=clip).generate(preds)
    elif generator == "retrieval":
        from megdecode.reconstruction.retrieval import RetrievalGenerator

        stimuli = read_stimuli(stimuli_tsv)
        table = read_latents(latents_dirs[primary])
        available = set(table.image_ids.tolist())
        gallery = [i for i in train_image_ids(stimuli) if i in available]
        leaked = set(gallery) & set(ids)
        if leaked:
            raise ValueError(
                f"retrieval gallery contains test images {sorted(leaked)[:3]}; check concept_split"
            )
        size = int(cfg["retrieval"]["image_size"])
        gen = RetrievalGenerator(
            primary, table, gallery, lambda g: load_images(stimuli, images_root, g, size)
        )
        images = gen.generate(preds)
        extra["retrieved_id"] = np.array(gen.retrieved_ids, dtype=str)
    elif generator == "versatile_diffusion":
        from megdecode.reconstruction.versatile_diffusion import VDParams, VersatileDiffusionGenerator

        params = VDParams.from_config(cfg["versatile_diffusion"])
        shapes = {b: tuple(read_meta(d)["shape"][1:]) for b, d in latents_dirs.items()}
        gen = VersatileDiffusionGenerator(params, derive_seed(seed, "versatile_diffusion", subject))
        images = gen.generate(preds, shapes)
    else:
        raise ValueError(f"unknown generator {generator!r}; choose from {', '.join(GENERATORS)}")
    write_reconstructions(images, ids, extra, out_npz)
    write_png_folder(images, ids, out_images)


# --------------------------------------------------------------------------- metrics


def feature_extractor_for_backbone(name: str, spec: Mapping[str, Any], weights_dir: str | None, threads: int):
    """A function ``(png_dir, image_ids) -> (n, d)`` computing backbone ``name``'s latents of image files,
    or None for a backbone whose latents do not come from pixels (logged)."""
    from megdecode.latents import Stimuli, make_backbone

    if spec.get("kind") in NON_IMAGE_KINDS:  # the plan leaves them out; a direct call is told why
        log.info(
            "two-way identification on %s skipped: kind %s is not computed from pixels", name, spec["kind"]
        )
        return None
    backbone = make_backbone(name, spec)

    def extract(png_dir: str, image_ids: Sequence[str]) -> np.ndarray:
        table = pd.DataFrame({"image_id": list(image_ids), "file": [f"{i}.png" for i in image_ids]})
        result = backbone.compute(Stimuli(table=table, images_root=Path(png_dir)), threads, weights_dir)
        return np.asarray(result.latents, dtype=np.float64).reshape(len(image_ids), -1)

    return extract


def score_images(
    seen: np.ndarray,
    recon: np.ndarray,
    features: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Per-image ``pixcorr``, ``ssim`` and, per feature set, ``two_way_<name>`` and ``<name>_distance``.

    ``seen`` / ``recon`` must have the same size; ``features[name] = (seen_features, recon_features)``.
    """
    table = {"pixcorr": im.pixcorr_per_image(seen, recon), "ssim": im.ssim_per_image(seen, recon)}
    for name, (f_seen, f_recon) in (features or {}).items():
        if len(f_seen) >= 2:
            table[f"two_way_{name}"] = im.two_way_identification_per_image(f_seen, f_recon)
        table[f"{name}_distance"] = im.correlation_distance_per_image(f_seen, f_recon)
    return pd.DataFrame(table)


def score_subjects(
    generator: str,
    subjects: Sequence[str],
    recon_npzs: Sequence[str],
    recon_images: Sequence[str],
    out_metrics: Sequence[str],
    out_figures: Sequence[str],
    stimuli_tsv: str,
    images_root: str,
    cfg: Mapping[str, Any],
    backbones: Mapping[str, Mapping[str, Any]],
    weights_dirs: Mapping[str, str],
    threads: int = 1,
    readout_model: str | None = None,
    readout_accuracy: str | None = None,
) -> None:
    """Rule ``reconstruction_metrics`` (one job per generator: feature models load once): for every subject,
    a per-image metrics TSV and the best/median/worst figure. Lists are aligned on ``subjects``.

    Like with like: seen and reconstructed images are brought to ``cfg['image_size']`` pixels, and every
    feature (two-way identification, distances) is computed from those pixels by the same extractor for both.
    ``readout_model``: the attribute readout (rule ``attribute_readout``), whose class probabilities give
    ``two_way_attribute_readout`` and ``attribute_readout_distance``; None = not scored. ``readout_accuracy``:
    its accuracy table, logged so the log shows whether the readout reads held-out training images.
    """
    if not len(subjects) == len(recon_npzs) == len(recon_images) == len(out_metrics) == len(out_figures):
        raise ValueError("score_subjects: one npz, image folder, metrics and figure path per subject")
    stimuli = read_stimuli(stimuli_tsv)
    extractors = {}
    for name, spec in backbones.items():
        extract = feature_extractor_for_backbone(name, spec, weights_dirs.get(name), threads)
        if extract is not None:
            extractors[name] = extract
    from megdecode.metrics.extractors import available_extractors

    nets = available_extractors(cfg["optional_extractors"])
    readout = None
    if readout_model is not None:
        from megdecode.reconstruction.attribute_readout import load_readout

        readout = load_readout(readout_model)
        log.info(
            "attribute readout %s: attributes %s, fitted on %d training images at %d px",
            readout_model,
            readout.attributes,
            len(readout.fit_ids),
            readout.image_px,
        )
        if readout_accuracy is not None:
            from megdecode.artifacts.attribute_readout import read_accuracy
            from megdecode.reconstruction.attribute_readout import accuracy_summary

            log.info(
                "attribute readout accuracy on held-out training images: %s",
                accuracy_summary(read_accuracy(readout_accuracy)),
            )
    for subject, npz, png_dir, out_tsv, out_png in zip(
        subjects, recon_npzs, recon_images, out_metrics, out_figures, strict=True
    ):
        _score_one(
            generator,
            subject,
            npz,
            png_dir,
            out_tsv,
            out_png,
            stimuli,
            images_root,
            cfg,
            extractors,
            readout,
            nets,
        )


def _score_one(
    generator: str,
    subject: str,
    recon_npz: str,
    recon_images: str,
    out_metrics: str,
    out_figure: str,
    stimuli: pd.DataFrame,
    images_root: str,
    cfg: Mapping[str, Any],
    extractors: Mapping[str, Any],
    readout: Any = None,
    nets: Mapping[str, Any] | None = None,
) -> None:
    data = read_reconstructions(recon_npz)
    ids = data["image_id"].astype(str).tolist()
    size = int(cfg["image_size"])
    seen = load_images(stimuli, images_root, ids, size)
    recon = resize_images(data["images"], size)
    features = {}
    if extractors:
        with tempfile.TemporaryDirectory(prefix=".tmp-metrics-") as tmp:
            for kind, images in (("seen", seen), ("recon", recon)):
                write_png_folder(images, ids, Path(tmp) / kind)
            for name, extract in extractors.items():
                features[name] = (
                    extract(str(Path(tmp) / "seen"), ids),
                    extract(str(Path(tmp) / "recon"), ids),
                )
    for name, extract in (nets or {}).items():  # the field's feature nets, on the same pixels
        features[name] = (extract(seen), extract(recon))
    if readout is not None:
        features[ATTRIBUTE_READOUT] = (readout.vector(seen), readout.vector(recon))
        log_readout_hits(readout, stimuli, ids, features[ATTRIBUTE_READOUT], subject, generator)
    scores = score_images(seen, recon, features)
    scores.insert(0, "image_id", ids)
    scores.insert(0, "generator", generator)
    scores.insert(0, "subject", subject)
    if "retrieved_id" in data:
        scores["retrieved_id"] = data["retrieved_id"].astype(str)
    scores["image_px"] = size
    write_metrics(scores, out_metrics)
    means = {c: round(float(scores[c].mean()), 4) for c in scores.columns if c not in ID_COLUMNS}
    log.info("sub-%s %s: %s", subject, generator, means)
    rank_by = cfg["rank_by"] if cfg["rank_by"] in scores.columns else "pixcorr"
    if rank_by != cfg["rank_by"]:
        log.info("rank_by %s is not a metric column here; ranking the figure by pixcorr", cfg["rank_by"])
    plot_best_median_worst(seen, recon, scores, rank_by, f"sub-{subject} · {generator}", out_figure)


def log_readout_hits(
    readout: Any,
    stimuli: pd.DataFrame,
    ids: Sequence[str],
    vectors: tuple[np.ndarray, np.ndarray],
    subject: str,
    generator: str,
) -> None:
    """Log, per attribute, how often the readout's top class on the seen test images and on their
    reconstructions is the seen image's attribute (a description of the metric's input, not a metric)."""
    parts = []
    for kind, vector in zip(("seen", "reconstructed"), vectors, strict=True):
        start, hits = 0, []
        for a in readout.attributes:
            k = len(readout.classes[a])
            top = np.asarray(readout.classes[a])[vector[:, start : start + k].argmax(axis=1)]
            start += k
            if a in stimuli.columns:
                truth = stimuli.loc[list(ids), a].astype(str).to_numpy()
                hits.append(f"{a} {np.mean(top == truth):.2f}")
        parts.append(f"{kind}: " + ", ".join(hits))
    log.info("sub-%s %s: attribute readout matches the seen image's attributes; %s", subject, generator,
             "; ".join(parts))  # fmt: skip


def best_median_worst(values: np.ndarray, higher_is_better: bool) -> list[int]:
    """Indices of the best, median and worst item of ``values`` (stable sort; ties: first index)."""
    order = np.argsort(-values if higher_is_better else values, kind="stable")
    return [int(order[0]), int(order[(len(order) - 1) // 2]), int(order[-1])]


def plot_best_median_worst(
    seen: np.ndarray, recon: np.ndarray, scores: pd.DataFrame, rank_by: str, title: str, out: str
) -> None:
    """Seen image next to its reconstruction for the best, median and worst item by ``rank_by``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = scores[rank_by].to_numpy(dtype=float)
    picks = best_median_worst(values, im.metric_higher_is_better(rank_by))
    fig, axes = plt.subplots(2, 3, figsize=(6, 4.4))
    for col, (label, idx) in enumerate(zip(("best", "median", "worst"), picks, strict=True)):
        axes[0, col].imshow(seen[idx])
        axes[0, col].set_title(f"{label}\n{rank_by}={values[idx]:.3f}", fontsize=8)
        axes[1, col].imshow(recon[idx])
        axes[1, col].set_xlabel(str(scores["image_id"].iloc[idx]), fontsize=7)
    axes[0, 0].set_ylabel("seen")
    axes[1, 0].set_ylabel("reconstruction")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format=Path(out).suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- summary


def summarise(
    metrics_paths: Sequence[str], out_tsv: str, out_md: str, out_html: str | None = None
) -> pd.DataFrame:
    """Rule ``reconstruction_summary``: mean of each metric per (generator, subject), the mean over subjects,
    and the paper's THINGS-MEG numbers as separate, labelled rows."""
    rows = []
    for path in metrics_paths:
        table = read_metrics(path)
        metric_cols = [c for c in table.columns if c not in ID_COLUMNS]
        for col in metric_cols:
            rows.append(
                {
                    "source": "this run",
                    "generator": table["generator"].iloc[0],
                    "subject": table["subject"].iloc[0],
                    "metric": col,
                    "higher_is_better": im.metric_higher_is_better(col),
                    "value": float(table[col].mean()),
                    "n_images": len(table),
                    "image_px": int(table["image_px"].iloc[0]),
                }
            )
    summary = pd.DataFrame(rows)
    if not summary.empty:
        mean = (
            summary.groupby(["generator", "metric", "higher_is_better", "image_px"], sort=False)
            .agg(value=("value", "mean"), n_images=("n_images", "sum"))
            .reset_index()
            .assign(source="this run", subject="mean")
        )
        summary = pd.concat([summary, mean], ignore_index=True)
    paper = pd.DataFrame(
        [
            {"source": PAPER_LABEL, "generator": "versatile_diffusion", "subject": "mean", "metric": k,
             "higher_is_better": im.metric_higher_is_better(k), "value": v, "n_images": 200,
             "image_px": PAPER_IMAGE_PX}
            for k, v in PAPER_THINGS_MEG.items()
        ]
    )  # fmt: skip
    summary = pd.concat([summary, paper], ignore_index=True)
    write_tsv(summary, out_tsv)
    with atomic_output(out_md) as tmp:
        tmp.write_text(summary_markdown(summary))
    if out_html is not None:
        with atomic_output(out_html) as tmp:
            tmp.write_text(summary_html(summary))
    return summary


def summary_wide(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean over subjects per generator (rows) x metric (columns, arrow = direction); paper row last."""
    means = summary[summary["subject"] == "mean"].copy()
    px = means["image_px"].astype(int).astype(str) + " px"
    means["row"] = np.where(
        means["source"] == "this run",
        means["generator"] + " (" + px + ")",
        "paper, THINGS-MEG (reported, " + px + ")",
    )
    return means.pivot_table(index="row", columns="metric", values="value", sort=False)


def _with_arrows(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table.columns = [f"{m} {'↑' if im.metric_higher_is_better(m) else '↓'}" for m in table.columns]
    return table


def summary_html(summary: pd.DataFrame) -> str:
    """Self-contained HTML for the Snakemake report: means (with the paper's row) and one row per subject."""
    means = _with_arrows(summary_wide(summary)).to_html(float_format="%.3f", na_rep="")
    ours = summary[(summary["source"] == "this run") & (summary["subject"] != "mean")]
    per_subject = _with_arrows(
        ours.pivot_table(index=["generator", "subject"], columns="metric", values="value", sort=False)
    ).to_html(float_format="%.3f", na_rep="")
    note = (
        "<p>Mean over subjects. The last row gives the paper's THINGS-MEG numbers as reported by ATM "
        "(real data, pretrained networks); it is not computed by this run.</p>"
    )
    return (
        f"<html><body><h3>Reconstruction metrics</h3>{note}{means}"
        f"<h3>Per subject</h3>{per_subject}</body></html>\n"
    )


def summary_markdown(summary: pd.DataFrame) -> str:
    """Mean over subjects per generator (rows) x metric (columns), the paper's row last and labelled."""
    wide = summary_wide(summary)
    arrows = {m: ("↑" if im.metric_higher_is_better(m) else "↓") for m in wide.columns}
    header = "| generator | " + " | ".join(f"{m} {arrows[m]}" for m in wide.columns) + " |"
    lines = [
        "# Reconstruction metrics (mean over subjects)",
        "",
        "Paper row: the paper's THINGS-MEG numbers as reported by ATM; real data, not computed by this run.",
        "Each row names the side, in pixels, at which seen and reconstructed images were compared",
        "(PixCorr, SSIM and the features of both): numbers at different resolutions are not comparable.",
        "",
        header,
        "|" + "---|" * (len(wide.columns) + 1),
    ]
    for row, values in wide.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.3f}" for v in values]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
