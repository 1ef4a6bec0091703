"""Preprocessing: BIDS MEG runs -> per-run epochs -> per-subject arrays for training.

Submodules: ``params`` (typed hyper-parameters), ``reader`` (BIDS run files, channel picks, events),
``signal`` (the fast filter/epoch chain), ``run`` (one run job), ``assemble`` (one subject: splits,
robust scaling, layout), ``qc`` (the subject's mne.Report).
"""

from megdecode.preprocessing.params import PreprocessingParams

__all__ = ["PreprocessingParams"]
