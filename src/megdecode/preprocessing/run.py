"""One run job: BIDS recording + events -> epochs (BIDS derivative ``_epo.fif``), QC row, PSDs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from megdecode.artifacts.epochs import QC_ARRAYS, QC_COLUMNS, write_run
from megdecode.artifacts.stimuli import read_stimuli
from megdecode.io import write_json
from megdecode.preprocessing.epocher import epocher_for
from megdecode.preprocessing.params import PreprocessingParams
from megdecode.preprocessing.reader import (
    BadRunError,
    attach_stimuli,
    find_run_sidecars,
    open_raw,
    pick_meg_channels,
    read_channels_tsv,
    read_events,
    run_stem,
)

log = logging.getLogger(__name__)


def welch_psd(x: np.ndarray, sfreq: float, seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD per channel (``scipy.signal.welch``: symmetric Hann window of ``seconds``, 50% overlap, mean
    removed per segment), one-sided density, float32."""
    from scipy.signal import welch

    nper = max(8, min(x.shape[-1], int(seconds * sfreq)))
    freqs, psd = welch(
        np.asarray(x, dtype=np.float32), fs=sfreq, window=np.hanning(nper), nperseg=nper,
        noverlap=nper - nper // 2, detrend="constant", scaling="density",
    )  # fmt: skip
    return freqs, psd.astype(np.float32)


def preprocess_run(
    raw_path: Path | str,
    events_path: Path | str,
    stimuli_path: Path | str,
    epochs_out: Path | str,
    qc_out: Path | str,
    psd_out: Path | str,
    cfg: dict[str, Any],
    threads: int = 1,
) -> pd.DataFrame:
    """Preprocess one run; on a bad run raise (``on_bad_run: error``) or record it and write empty epochs."""
    params = PreprocessingParams.from_config(cfg)
    stem = run_stem(raw_path)
    from mne_bids import get_entities_from_fname

    ent = get_entities_from_fname(stem)
    qc: dict[str, Any] = {c: "n/a" for c in QC_COLUMNS}
    qc.update(subject=ent["subject"], session=ent["session"], run=ent["run"], status="ok", problem="")
    warnings: list[str] = []
    try:
        epochs, spectra = _process(raw_path, events_path, stimuli_path, params, stem, qc, warnings, threads)
    except BadRunError as err:
        if params.on_bad_run == "error":
            raise
        log.warning("skipping bad run (preprocessing.on_bad_run: skip): %s", err)
        qc.update(status="skipped", problem=str(err))
        epochs = _empty_epochs(params, str(err))
        spectra = {k: np.zeros((0,), dtype=np.float32) for k in QC_ARRAYS}
    qc["warnings"] = "; ".join(warnings)
    table = pd.DataFrame([qc], columns=QC_COLUMNS)
    write_run(epochs, table, spectra, epochs_out, qc_out, psd_out)
    return table


def _process(raw_path, events_path, stimuli_path, params, stem, qc, warnings, threads):
    import mne

    raw = open_raw(raw_path, stem)
    sfreq = float(raw.info["sfreq"])
    qc.update(raw_sfreq=sfreq, duration_s=round(raw.n_times / sfreq, 3))
    if params.raw_sfreq is not None and abs(sfreq - params.raw_sfreq) > 1e-6:
        raise BadRunError(
            f"run {stem}: sampling rate {sfreq} Hz differs from preprocessing.raw_sfreq "
            f"({params.raw_sfreq} Hz)"
        )
    sidecars = find_run_sidecars(raw_path)
    for key in ("channels", "meg_json", "coordsystem"):
        if sidecars[key] is None:
            warnings.append(f"no {key} sidecar; used the recording header")
    pick = pick_meg_channels(raw.info, params.bad_channels, stem)
    qc.update(
        n_meg_channels=len(pick.names) + len(pick.dropped),
        n_channels_kept=len(pick.names),
        dropped_channels=",".join(pick.dropped),
        bad_channels_not_found=",".join(pick.bad_not_found),
    )
    if sidecars["channels"] is not None:
        tsv = read_channels_tsv(sidecars["channels"])
        absent = sorted(set(pick.names) - set(tsv["name"]))
        if absent:
            warnings.append(f"{len(absent)} MEG channel(s) of the header missing from channels.tsv")
    events = read_events(events_path, sfreq, stem, params.trial_types, warnings)
    events = attach_stimuli(events, read_stimuli(stimuli_path), stem)
    counts = events["trial_type"].value_counts()
    qc.update(n_events=len(events), **{f"n_{t}": int(counts.get(t, 0)) for t in ("exp", "test", "catch")})

    picks = pick.picks
    read, rows = block_reader(raw, picks)

    result = epocher_for(params.phase)(
        read, raw.n_times, int(rows.max()) + 1, sfreq, events["sample"].to_numpy(), params, stem,
        rows=rows, names=pick.names, workers=threads,
    )  # fmt: skip
    mid = raw.n_times // 2
    half = int(min(params.qc_psd_seconds * sfreq, raw.n_times) // 2)
    freqs_raw, psd_raw = welch_psd(read(mid - half, mid + half)[rows], sfreq)
    freqs_clean, psd_clean = welch_psd(result.stream, params.sfreq)
    images = (events["trial_type"] != "catch").to_numpy()
    spectra = {
        "freqs_raw": freqs_raw,
        "psd_raw": psd_raw,
        "freqs_clean": freqs_clean,
        "psd_clean": psd_clean,
        "evoked_sum": result.data[images].sum(axis=0, dtype=np.float64),
        "evoked_n": np.array(int(images.sum())),
        "times": result.times,
    }

    info = mne.pick_info(raw.info, picks, verbose="error")
    with info._unlock():
        info["sfreq"] = params.sfreq
        info["lowpass"] = params.h_freq
        info["highpass"] = params.l_freq or 0.0
    metadata = events[
        ["onset", "sample", "trial_type", "value", "image_id", "concept", "concept_split"]
    ].copy()
    metadata["value"] = metadata["value"].astype("float64")
    for col in ("image_id", "concept", "concept_split"):
        metadata[col] = metadata[col].astype(object).where(metadata[col].notna(), "n/a").astype(str)
    event_id = {t: i + 1 for i, t in enumerate(params.trial_types)}
    codes = events["trial_type"].map(event_id).to_numpy()
    ev = np.column_stack([events["sample"].to_numpy(), np.zeros(len(events), int), codes])
    present = {t: c for t, c in event_id.items() if c in set(codes)}
    epochs = mne.EpochsArray(
        result.data,
        info,
        events=ev,
        event_id=present,
        tmin=float(result.times[0]),
        metadata=metadata,
        baseline=None,
        verbose="error",
    )
    return epochs, spectra


def block_reader(raw, picks: np.ndarray):
    """``(read, rows)``: ``read(start, stop)`` returns the contiguous block of channels spanning the picks
    (MNE reads a slice of channels several times faster than a fancy index); ``rows`` are the picks in it.
    """
    lo, hi = int(picks.min()), int(picks.max()) + 1

    def read(start: int, stop: int) -> np.ndarray:
        return raw.get_data(picks=slice(lo, hi), start=start, stop=stop)

    return read, picks - lo


def _empty_epochs(params: PreprocessingParams, reason: str):
    """An epochs file with every epoch dropped (reason in the drop log): marks a skipped run honestly."""
    import mne

    info = mne.create_info(["none"], params.sfreq, "misc")
    epochs = mne.EpochsArray(
        np.zeros((1, 1, params.n_times()), np.float32), info, tmin=params.tmin, baseline=None, verbose="error"
    )
    epochs.drop([0], reason="BAD_RUN", verbose="error")
    return epochs


def write_derivatives_description(path: Path | str, cfg: dict[str, Any]) -> None:
    """``dataset_description.json`` of the ``derivatives/megdecode`` tree (BIDS derivative dataset)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("megdecode")
    except PackageNotFoundError:  # running from a source tree without installation
        ours = "unknown"
    p = PreprocessingParams.from_config(cfg)
    write_json(
        {
            "Name": "megdecode preprocessing: epochs per run",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": "megdecode",
                    "Version": ours,
                    "Description": (
                        f"{p.phase}-phase band-pass {p.l_freq}-{p.h_freq} Hz, "
                        f"epochs {p.tmin}..{p.tmax} s around "
                        f"events.tsv 'sample', baseline ({p.baseline_tmin}, {p.baseline_tmax}) s, "
                        f"decimated to {p.sfreq} Hz"
                    ),
                }
            ],
        },
        path,
    )
