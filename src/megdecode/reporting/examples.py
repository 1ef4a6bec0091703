"""Example figures of one backbone and subject: top-5 retrieved images, spatial attention maps."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from megdecode.artifacts.brain_model import read_state
from megdecode.artifacts.latents import read_latents
from megdecode.artifacts.predictions import read_predictions
from megdecode.artifacts.preprocessed import read_channels
from megdecode.artifacts.stimuli import read_image, read_stimuli
from megdecode.metrics import retrieval as rm
from megdecode.reporting.common import ReportSettings, save_figure, style

log = logging.getLogger(__name__)


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

    style()
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
    style()
    sim = rm.cosine_similarity(pred[:n_trials], candidates)
    n = min(n_trials, len(pred))
    fig, axes = plt.subplots(n, k + 1, figsize=(1.2 * (k + 1), 1.25 * n), squeeze=False)
    for i in range(n):
        order = np.argsort(-sim[i], kind="stable")[:k]
        shown = [(image_ids[i], "seen")] + [(gallery_ids[j], f"#{r + 1}") for r, j in enumerate(order)]
        for c, (img_id, title) in enumerate(shown):
            ax = axes[i][c]
            ax.imshow(np.asarray(read_image(image_paths[img_id])))
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
    preds = read_predictions(predictions)
    latents = read_latents(latent_dir)
    stimuli = read_stimuli(stimuli_table)
    paths = {r.image_id: Path(images_root) / r.file for r in stimuli.itertuples()}
    ids = preds.image_ids["test_small"]
    gallery_ids, _ = rm.gallery(ids)
    fig = plot_topk_examples(
        preds.pred("test_small", preds.head_names[0]),  # the retrieval head (brain: clip),
        ids,
        preds.candidates(latents, gallery_ids),
        gallery_ids,
        paths,
        settings.n_example_trials,
    )
    save_figure(fig, *outputs["top5"], dpi=settings.dpi)
    weights = None
    if model_weights is not None and Path(model_weights).is_file() and channels and Path(channels).is_file():
        weights = attention_weights(read_state(model_weights)[1])
    if weights is None:
        log.info("no spatial attention weights found in %s; attention figure left as a note", model_weights)
        fig = _blank_figure("No spatial-attention weights in this brain module.")
    else:
        layout = read_channels(Path(channels).parent)
        if len(layout) != weights.shape[1]:
            log.info(
                "channels.tsv has %d rows, attention %d channels; note only", len(layout), weights.shape[1]
            )
            fig = _blank_figure("Sensor layout does not match the attention weights.")
        else:
            fig = plot_attention_maps(weights, layout[["x", "y"]].to_numpy())
    save_figure(fig, *outputs["attention"], dpi=settings.dpi)
