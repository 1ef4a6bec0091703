"""Small synthetic preprocessed subjects and latents for the training and ridge tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from megdecode import io


def make_latents(root: Path, n_images: int = 60, dim: int = 8, tokens: int = 0, seed: int = 0) -> Path:
    """``root/latents.npy`` + ``index.tsv`` for images ``img000``..; returns ``root``."""
    rng = np.random.default_rng(seed)
    shape = (n_images, tokens, dim) if tokens else (n_images, dim)
    io.save_npy(rng.standard_normal(shape).astype(np.float32), root / "latents.npy")
    io.write_tsv(pd.DataFrame({"image_id": [f"img{i:03d}" for i in range(n_images)]}), root / "index.tsv")
    io.write_json({"shape": list(shape), "kind": "synthetic"}, root / "latents.json")
    return root


def make_subject(
    root: Path,
    latents_dir: Path,
    subject: str = "01",
    n_channels: int = 12,
    n_times: int = 20,
    repeats: int = 3,
    noise: float = 0.5,
    seed: int = 1,
    drop_channels: tuple[int, ...] = (),
    n_test: int = 10,
) -> Path:
    """Preprocessed arrays whose evoked response is a fixed linear map of each image's latent.

    Images are split by concept: the last ``n_test`` images are test concepts (``test_small``: one averaged
    row each; ``test_large``: ``repeats`` single trials), of the others every 5th goes to ``val``.
    """
    rng = np.random.default_rng(seed)
    lat = io.load_npy(latents_dir / "latents.npy")
    lat = lat.reshape(len(lat), -1)
    ids = io.read_tsv(latents_dir / "index.tsv", dtype={"image_id": str})["image_id"].tolist()
    n_img, dim = lat.shape
    mixing = np.random.default_rng(123).standard_normal((n_channels, dim)) / np.sqrt(dim)
    time_course = np.exp(-0.5 * ((np.arange(n_times) - n_times / 2) / (n_times / 6)) ** 2)
    rows, trials = [], []
    for i, image_id in enumerate(ids):
        test = i >= n_img - n_test
        split = "test_large" if test else ("val" if i % 5 == 0 else "train")
        evoked = (mixing @ lat[i])[:, None] * time_course[None, :]
        n_rep = repeats
        for _ in range(n_rep):
            rows.append(evoked + noise * rng.standard_normal((n_channels, n_times)))
            trials.append((image_id, f"c{i:03d}", split, 1))
        if test:
            rows.append(evoked + noise / np.sqrt(repeats) * rng.standard_normal((n_channels, n_times)))
            trials.append((image_id, f"c{i:03d}", "test_small", repeats))
    keep = [c for c in range(n_channels) if c not in drop_channels]
    meg = np.stack(rows).astype(np.float32)[:, keep]
    df = pd.DataFrame(trials, columns=["image_id", "concept", "split", "n_averaged"])
    df.insert(0, "subject", subject)
    df.insert(1, "session", "01")
    df.insert(2, "run", "01")
    df.insert(3, "trial_type", np.where(df["split"] == "test_small", "test", "exp"))
    grid = np.random.default_rng(7).uniform(0.05, 0.95, (n_channels, 2))
    channels = pd.DataFrame(
        {"name": [f"MEG{c:03d}" for c in range(n_channels)], "x": grid[:, 0], "y": grid[:, 1]}
    )
    io.save_npy(meg, root / "meg.npy")
    io.write_tsv(df, root / "trials.tsv")
    io.write_tsv(channels.iloc[keep], root / "channels.tsv")
    io.write_json({"sfreq": 120.0, "tmin": -0.5, "n_times": n_times}, root / "info.json")
    return root
