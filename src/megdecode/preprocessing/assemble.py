"""One subject: per-run epochs -> ``meg.npy`` + ``trials.tsv`` + ``channels.tsv`` + ``info.json``.

Splits (DESIGN.md): ``train`` = exp trials of training concepts; ``val`` = a seeded random part of the
training *images* (so no image is in both); ``test_small`` = test images, repetitions averaged (one row per
image); ``test_large`` = single-trial exp images of test concepts. Catch trials are excluded. A robust
scaler (per-channel median / inter-quartile range) is fitted on train rows only, then every row is scaled
and clamped. The array is written through a memory map, run by run, so a subject never sits in memory.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts import preprocessed
from megdecode.artifacts.epochs import read_epochs, read_qc_rows, write_runs_table
from megdecode.artifacts.splits import check_no_leakage
from megdecode.preprocessing.params import PreprocessingParams
from megdecode.seeds import derive_rng

log = logging.getLogger(__name__)


def sensor_layout(positions: np.ndarray) -> np.ndarray:
    """2-D sensor layout in [0, 1] from 3-D sensor positions (azimuthal equidistant projection).

    The sphere is fitted by least squares; each axis is min-max scaled to [0, 1]. On the real CTF-275
    recording in ``../shared/ctf-sample`` this is MNE's layout of the system (:func:`mne_layout`, what
    brainmagick uses) to 0.005 on average (docs/preprocessing.md); unlike a layout file, it follows the
    positions a recording (or the simulator) gives, for any sensor array.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) < 4 or not np.isfinite(pos).all():
        raise ValueError("sensor positions must be a finite (n >= 4, 3) array")
    if np.ptp(pos, axis=0).max() == 0:
        raise ValueError("the recording has no sensor positions (all zero); cannot build a layout")
    a = np.column_stack([2 * pos, np.ones(len(pos))])
    sol, *_ = np.linalg.lstsq(a, (pos**2).sum(axis=1), rcond=None)
    center = sol[:3]
    unit = pos - center
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    theta = np.arccos(np.clip(unit[:, 2], -1, 1))
    phi = np.arctan2(unit[:, 1], unit[:, 0])
    xy = np.column_stack([theta * np.cos(phi), theta * np.sin(phi)])
    span = np.ptp(xy, axis=0)
    span[span == 0] = 1.0
    return (xy - xy.min(axis=0)) / span


def mne_layout(info: Any, ch_names: Sequence[str]) -> np.ndarray:
    """MNE's layout of the system (``mne.find_layout``: CTF-275 for a CTF recording) for ``ch_names`` of
    ``info``: each sensor at its box's centre, each axis scaled to [0, 1]; a channel looked up by its name
    without the CTF serial suffix (``MLC11-1609`` -> ``MLC11``). The reference :func:`sensor_layout` is
    checked against (benchmarks/sensor_layout_compare.py)."""
    import mne

    layout = mne.find_layout(mne.pick_info(info, [info["ch_names"].index(name) for name in ch_names]))
    rows = {name: row for row, name in enumerate(layout.names)}
    keys = [re.sub(r"-\d+$", "", name) for name in ch_names]
    if missing := [name for name, key in zip(ch_names, keys, strict=True) if key not in rows]:
        raise ValueError(f"MNE's {layout.kind} layout lacks {len(missing)} channels: {missing[:5]}")
    boxes = layout.pos[[rows[key] for key in keys]]
    centres = boxes[:, :2] + boxes[:, 2:4] / 2
    return (centres - centres.min(axis=0)) / np.ptp(centres, axis=0)


def assign_splits(
    trials: pd.DataFrame, val_fraction: float, rng: np.random.Generator, validation: str = "trials"
) -> pd.Series:
    """Split of each single trial: train / val / test_small / test_large / catch.

    ``trials`` needs ``trial_type``, ``image_id``, ``concept``, ``concept_split``. Validation is drawn among
    training images (exp images of training concepts), never among test concepts: a random ``val_fraction`` of
    the training images (``validation="trials"``), or every image of a random ``val_fraction`` of the
    training concepts (``"concepts"``: pass the same ``rng`` state for every subject so that a model shared by
    subjects never trains on a validation concept).
    """
    split = pd.Series("catch", index=trials.index, dtype=object)
    exp = trials["trial_type"] == "exp"
    test_concept = trials["concept_split"] == "test"
    bad = (trials["trial_type"] == "test") & ~test_concept
    if bad.any():
        ids = trials.loc[bad, "image_id"].unique()[:5].tolist()
        raise ValueError(
            f"test images {ids} belong to concepts marked 'train' in the stimuli table (concept_split)"
        )
    split[trials["trial_type"] == "test"] = "test_small"
    split[exp & test_concept] = "test_large"
    train = exp & ~test_concept
    split[train] = "train"
    if validation not in ("trials", "concepts"):
        raise ValueError(f"training.validation must be 'trials' or 'concepts', got {validation!r}")
    column = "image_id" if validation == "trials" else "concept"
    units = np.sort(trials.loc[train, column].astype(str).unique())
    n_val = int(round(val_fraction * len(units)))
    if n_val:
        val_units = set(rng.choice(units, size=n_val, replace=False).tolist())
        split[train & trials[column].astype(str).isin(val_units)] = "val"
    return split


def fit_robust_scaler(
    meg: np.ndarray,
    rows: np.ndarray,
    quantiles: tuple[float, float],
    max_trials: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel median and inter-quantile range over ``meg[rows]`` (all times) -> center, scale, rows used.

    Only ``rows`` are read (callers pass train rows: no test trial reaches the scaler). At most
    ``max_trials`` rows, drawn with ``rng``, keep memory bounded at THINGS size.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise ValueError("no training trial to fit the scaler on (check the splits and the stimuli table)")
    if rows.size > max_trials:
        rows = np.sort(rng.choice(rows, size=max_trials, replace=False))
    sample = np.asarray(meg[rows], dtype=np.float32)  # (n, channels, times)
    n_ch = sample.shape[1]
    center = np.empty(n_ch, dtype=np.float64)
    scale = np.empty(n_ch, dtype=np.float64)
    for c in range(n_ch):
        lo, med, hi = np.percentile(sample[:, c, :], [quantiles[0], 50.0, quantiles[1]])
        center[c], scale[c] = med, hi - lo
    if (scale <= 0).any():
        raise ValueError(
            f"channel(s) {np.flatnonzero(scale <= 0).tolist()[:10]} have zero spread in training data"
        )
    return center, scale, rows


def apply_scaler(
    meg: np.ndarray, center: np.ndarray, scale: np.ndarray, clamp: float, block: int = 256
) -> None:
    """In place, block by block: ``clip((x - center) / scale, -clamp, clamp)`` per channel."""
    c = center.astype(np.float32)[None, :, None]
    s = scale.astype(np.float32)[None, :, None]
    for start in range(0, len(meg), block):
        part = (meg[start : start + block] - c) / s
        np.clip(part, -clamp, clamp, out=part)
        meg[start : start + block] = part


def _recording_rate(runs: pd.DataFrame) -> float | None:
    """The recordings' sampling rate (Hz) of the runs used (the online decoder checks a stream against it)."""
    rates = pd.to_numeric(runs.loc[runs["status"] == "ok", "raw_sfreq"], errors="coerce").dropna().unique()
    return float(rates[0]) if len(rates) == 1 else None


def _run_name(epochs_path: Path | str) -> str:
    """The run of a derived ``..._epo.fif``: its BIDS stem, ``sub-X_ses-Y_task-T_run-Z``."""
    return Path(epochs_path).name.removesuffix("_epo.fif")


def check_same_channels(subject: str, channels: dict[str, list[str]]) -> None:
    """Every run of a subject must keep the same MEG channels, in one order; name each run that differs."""
    names = list(channels)
    union = [c for chans in channels.values() for c in chans]
    union = list(dict.fromkeys(union))
    lacking = {
        run: [c for c in union if c not in set(chans)]
        for run, chans in channels.items()
        if set(chans) != set(union)
    }
    if lacking:
        lines = [f"run {run} lacks {', '.join(missing)}" for run, missing in lacking.items()]
        every = sorted({c for missing in lacking.values() for c in missing}, key=union.index)
        raise ValueError(
            f"sub-{subject}: the runs do not keep the same MEG channels: {'; '.join(lines)} (present in the "
            f"other runs). A model needs the same channels in every run: add {', '.join(every)} to "
            "preprocessing.bad_channels in your config, which drops them from every run, then run the same "
            "snakemake command again"
        )
    reordered = [run for run in names if channels[run] != channels[names[0]]]
    if reordered:
        raise ValueError(
            f"sub-{subject}: run(s) {', '.join(reordered)} hold the MEG channels of run {names[0]} in "
            "another order; convert every run of a subject alike (the same acquisition settings), then run "
            "again"
        )


def assemble_subject(
    epochs_paths: Sequence[Path | str],
    qc_paths: Sequence[Path | str],
    subject: str,
    out_dir: Path | str,
    out_runs: Path | str,
    cfg: dict[str, Any],
    seed: int,
    validation: str = "trials",
) -> pd.DataFrame:
    """Concatenate a subject's runs, split (``validation``: ``training.validation``), scale, and write the
    training inputs (the preprocessed subject folder ``out_dir``). Returns the trial table."""
    params = PreprocessingParams.from_config(cfg)
    runs, good = usable_runs(epochs_paths, qc_paths, subject, out_runs)
    trials, ch_names, info0 = read_trial_metadata(good, params, subject)
    trials["subject"] = subject
    val_rng = (
        derive_rng(int(seed), subject, "val")
        if validation == "trials"
        else derive_rng(int(seed), "val-concepts")
    )
    trials["split"] = assign_splits(trials, params.val_fraction, val_rng, validation)
    check_no_leakage(trials, f"sub-{subject}", validation)
    single, tests, small = output_rows(trials, params, subject)
    n_rows, n_ch, n_t = len(single) + len(small), len(ch_names), params.n_times()
    log.info("sub-%s: %d rows (%s)", subject, n_rows, trials["split"].value_counts().to_dict())
    with preprocessed.meg_writer(out_dir, (n_rows, n_ch, n_t)) as meg:
        fill_meg(meg, good, single, tests, small, params)
        train_rows = single.loc[single["split"] == "train", "_row"].to_numpy()
        center, scale, used = fit_robust_scaler(
            meg,
            train_rows,
            params.scaler_quantiles,
            params.scaler_max_trials,
            derive_rng(int(seed), subject, "scaler"),
        )
        apply_scaler(meg, center, scale, params.clamp)

    table = pd.concat([single, small], ignore_index=True).sort_values("_row")[preprocessed.TRIAL_COLUMNS]
    positions = np.array([ch["loc"][:3] for ch in info0["chs"]])
    write_runs_table(runs, out_runs)
    scaler = {"center": center, "scale": scale, "n_fit_trials": int(len(used))}
    info = subject_info(subject, params, runs, table, (n_rows, n_ch, n_t), scaler, seed)
    preprocessed.write_tables(out_dir, table, ch_names, sensor_layout(positions), info)
    return table


def usable_runs(
    epochs_paths: Sequence[Path | str], qc_paths: Sequence[Path | str], subject: str, out_runs: Path | str
) -> tuple[pd.DataFrame, list[tuple[Path | str, Path | str]]]:
    """The runs' QC rows, and the (epochs, QC) paths of the runs not skipped as bad (at least one)."""
    runs = read_qc_rows(qc_paths)
    good = [
        (e, q) for e, q, status in zip(epochs_paths, qc_paths, runs["status"], strict=True) if status == "ok"
    ]
    skipped = runs.loc[runs["status"] != "ok", ["session", "run", "problem"]]
    for _, row in skipped.iterrows():
        log.warning("sub-%s ses-%s run-%s skipped: %s", subject, row["session"], row["run"], row["problem"])
    if not good:
        raise ValueError(f"sub-{subject}: every run was skipped as bad; see {out_runs}")
    return runs, good


def read_trial_metadata(
    good: Sequence[tuple[Path | str, Path | str]], params: PreprocessingParams, subject: str
):
    """Pass 1, without loading data: every run's trials (``session``, ``run``, and where each epoch lies:
    ``_file``, ``_epoch``), the channel names (the same in every run, checked) and the first run's info."""
    from mne_bids import get_entities_from_fname

    epochs = [(path, read_epochs(path, preload=False)) for path, _ in good]
    check_same_channels(subject, {_run_name(path): ep.ch_names for path, ep in epochs})
    tables, ch_names, info0 = [], epochs[0][1].ch_names, epochs[0][1].info
    for path, ep in epochs:
        if abs(ep.info["sfreq"] - params.sfreq) > 1e-6 or len(ep.times) != params.n_times():
            raise ValueError(
                f"{path}: epochs at {ep.info['sfreq']} Hz / {len(ep.times)} samples; rerun the run job"
            )
        ent = get_entities_from_fname(Path(path).name)
        meta = ep.metadata.reset_index(drop=True).copy()
        meta["session"], meta["run"], meta["_epoch"] = ent["session"], ent["run"], np.arange(len(meta))
        meta["_file"] = len(tables)
        tables.append(meta)
    return pd.concat(tables, ignore_index=True), ch_names, info0


def output_rows(
    trials: pd.DataFrame, params: PreprocessingParams, subject: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The rows of ``meg.npy`` (``_row``): single trials (train, val, test_large), then the small test set
    (one row per test image, repetitions averaged, or one per repetition). Returns (single, the test
    trials, small)."""
    single = trials[trials["split"].isin(["train", "val", "test_large"])].copy()
    single["n_averaged"] = 1
    single["_row"] = np.arange(len(single))
    tests = trials[trials["split"] == "test_small"]
    if params.average_test:
        small = (
            tests.groupby("image_id", sort=True)
            .agg(
                concept=("concept", "first"),
                session=("session", lambda s: s.iloc[0] if s.nunique() == 1 else "n/a"),
                run=("run", lambda s: s.iloc[0] if s.nunique() == 1 else "n/a"),
                n_averaged=("trial_type", "size"),
            )
            .reset_index()
        )
        small["trial_type"], small["split"], small["subject"] = "test", "test_small", subject
    else:
        small = tests.copy()
        small["n_averaged"] = 1
    small["_row"] = len(single) + np.arange(len(small))
    return single, tests, small


def fill_meg(
    meg: np.ndarray,
    good: Sequence[tuple[Path | str, Path | str]],
    single: pd.DataFrame,
    tests: pd.DataFrame,
    small: pd.DataFrame,
    params: PreprocessingParams,
) -> None:
    """Pass 2, run by run: each single trial's epoch into its row; the test repetitions into theirs (or
    summed, then averaged, into their image's row)."""
    n_ch, n_t = meg.shape[1:]
    test_sum = np.zeros((len(small), n_ch, n_t), dtype=np.float64) if params.average_test else None
    small_index = {img: i for i, img in enumerate(small["image_id"])} if params.average_test else None
    for f, (path, _) in enumerate(good):
        data = read_epochs(path, preload=True).get_data(copy=False).astype(np.float32, copy=False)
        part = single[single["_file"] == f]
        meg[part["_row"].to_numpy()] = data[part["_epoch"].to_numpy()]
        these = tests[tests["_file"] == f]
        if params.average_test:
            for img, e in zip(these["image_id"], these["_epoch"], strict=True):
                test_sum[small_index[img]] += data[e]
        else:
            rows = small.loc[small["_file"] == f, "_row"].to_numpy()
            meg[rows] = data[these["_epoch"].to_numpy()]
    if params.average_test and len(small):
        meg[small["_row"].to_numpy()] = (test_sum / small["n_averaged"].to_numpy()[:, None, None]).astype(
            np.float32
        )


def subject_info(
    subject: str,
    params: PreprocessingParams,
    runs: pd.DataFrame,
    table: pd.DataFrame,
    shape: tuple[int, int, int],
    scaler: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """``info.json``: rates and shape, rows per split, the scaler (fitted on train rows), the runs used and
    skipped, the preprocessing settings and software versions."""
    import mne

    n_rows, n_ch, n_t = shape
    return {
        "subject": subject,
        "sfreq": params.sfreq,
        "raw_sfreq": _recording_rate(runs),
        "tmin": params.tmin,
        "n_times": n_t,
        "n_channels": n_ch,
        "shape": [n_rows, n_ch, n_t],
        "dtype": "float32",
        "n_rows_per_split": table["split"].value_counts().sort_index().to_dict(),
        "scaler": {
            "kind": "robust",
            "fit_on": "train",
            "n_fit_trials": scaler["n_fit_trials"],
            "quantiles": list(params.scaler_quantiles),
            "clamp": params.clamp,
            "center": scaler["center"].tolist(),
            "scale": scaler["scale"].tolist(),
        },
        "runs_used": [f"ses-{r.session}_run-{r.run}" for r in runs.itertuples() if r.status == "ok"],
        "runs_skipped": [f"ses-{r.session}_run-{r.run}" for r in runs.itertuples() if r.status != "ok"],
        "preprocessing": params.as_dict(),
        "seed": int(seed),
        "software": {"mne": mne.__version__, "numpy": np.__version__},
    }
