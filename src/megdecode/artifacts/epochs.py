"""One run's preprocessing outputs (rule preprocess_run), read by the subject job (preprocess_subject).

- ``derivatives/megdecode/.../<run stem>_epo.fif``: the run's epochs (MNE), trial metadata included.
- ``qc/runs/<run stem>_qc.tsv``: one row (:data:`QC_COLUMNS`): status, rate, channel and trial counts.
- ``qc/runs/<run stem>_psd.npz``: :data:`QC_ARRAYS`, power spectra before/after and the image trials' evoked
  sum (empty arrays for a skipped run).
- ``qc/sub-<subject>_runs.tsv``: the QC rows of a subject's runs, written by the subject job for its report.
Paths: :mod:`~.paths` (``Layout.epochs``, ``Layout.qc_run``, ``Layout.qc_runs_table``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from megdecode import io

if TYPE_CHECKING:
    import mne

#: arrays of the per-run QC archive (``_psd.npz``): spectra before/after, and the image trials' evoked sum
QC_ARRAYS = ("freqs_raw", "psd_raw", "freqs_clean", "psd_clean", "evoked_sum", "evoked_n", "times")

QC_COLUMNS = [
    "subject",
    "session",
    "run",
    "status",
    "problem",
    "raw_sfreq",
    "duration_s",
    "n_meg_channels",
    "n_channels_kept",
    "dropped_channels",
    "bad_channels_not_found",
    "n_events",
    "n_exp",
    "n_test",
    "n_catch",
    "warnings",
]
_LABELS = {"subject": str, "session": str, "run": str}


def write_run(
    epochs: mne.BaseEpochs,
    qc_row: pd.DataFrame,
    spectra: Mapping[str, np.ndarray],
    epochs_path: Path | str,
    qc_path: Path | str,
    psd_path: Path | str,
) -> None:
    """The run's epochs, power spectra and QC row (written last: a run with a QC row is complete)."""
    with io.atomic_output(epochs_path) as tmp:
        epochs.save(tmp, overwrite=True, verbose="error")
    io.save_npz(spectra, psd_path)
    io.write_tsv(qc_row, qc_path)


def read_epochs(path: Path | str, preload: bool) -> mne.BaseEpochs:
    """A run's epochs (``preload=False``: metadata and channels only, the data stays on disk)."""
    import mne

    return mne.read_epochs(path, preload=preload, verbose="error")


def read_epochs_info(path: Path | str) -> mne.Info:
    """The measurement info (channels, positions) of a run's epochs, without reading them."""
    import mne

    return mne.io.read_info(path, verbose="error")


def read_qc_rows(paths: Sequence[Path | str]) -> pd.DataFrame:
    """The QC rows of several runs, in the order given (labels as text)."""
    return pd.concat([io.read_tsv(p, dtype=_LABELS) for p in paths])


def read_spectra(path: Path | str) -> dict[str, np.ndarray]:
    """A run's QC archive (:data:`QC_ARRAYS`)."""
    arrays = io.load_npz(path)
    missing = [k for k in QC_ARRAYS if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}; rerun the preprocess_run job that writes it")
    return arrays


def write_runs_table(runs: pd.DataFrame, path: Path | str) -> None:
    io.write_tsv(runs, path)


def read_runs_table(path: Path | str) -> pd.DataFrame:
    """A subject's QC rows (:func:`write_runs_table`), ``session`` and ``run`` as text."""
    return io.read_tsv(path, dtype={"session": str, "run": str})
