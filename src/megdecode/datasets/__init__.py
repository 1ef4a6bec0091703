"""Readers of real datasets: one module per dataset, each with a reader of the :class:`DatasetReader` shape.

- :mod:`~megdecode.datasets.things`: THINGS-MEG (OpenNeuro ds004212), a BIDS dataset (``study.source: bids``).
- :mod:`~megdecode.datasets.nsd`: the Natural Scenes Dataset, 7T fMRI (``study.source: nsd``).
- :mod:`~megdecode.datasets.things_eeg2`: THINGS-EEG2, EEG (target ``things_eeg2``; section ``things_eeg2``),
  its pickled ``.npy`` files read by :mod:`~megdecode.datasets.safe_npy` without running code from them.

A reader knows one dataset's files and quirks and answers three questions for the workflow: what is there
(:meth:`~DatasetReader.inventory`), which trials a subject saw (:meth:`~DatasetReader.trials`, the dataset's
events as one row per presentation) and which images were shown (:meth:`~DatasetReader.stimuli_table`, the
stimuli contract of :mod:`megdecode.artifacts.stimuli`). A simulated study needs none of them: the simulator
writes its own files.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class DatasetReader(Protocol):
    """What the workflow asks of a real dataset (its configured subjects, sessions and runs)."""

    def inventory(self) -> pd.DataFrame:
        """One row per configured recording (run or session) and which of its files exist.

        Raises the dataset's error, naming every missing file and the fix, when a configured recording is
        incomplete.
        """
        ...

    def trials(self, subject: str) -> pd.DataFrame:
        """The subject's events as trials: one row per stimulus presentation, with ``subject``, ``session``
        and ``trial_type`` (``exp``, ``test`` or ``catch``, or the dataset's split) columns."""
        ...

    def stimuli_table(self) -> pd.DataFrame:
        """One row per image the configured subjects saw, in the stimuli contract's columns."""
        ...
