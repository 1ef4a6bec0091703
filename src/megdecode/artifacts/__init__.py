"""The files that pass between stages: one module per contract of docs/ARCHITECTURE.md.

Each module owns its file names, writer and reader, and validates what it reads with an error that names the
file and the job to rerun. Stages import these modules; nothing else opens these files.

- :mod:`~megdecode.artifacts.paths`: every path of the workflow (rules and package alike; BIDS via BIDSPath).
- :mod:`~megdecode.artifacts.splits`: split names and the leakage check.
- :mod:`~megdecode.artifacts.windows`: epoch time axis and time windows.
- :mod:`~megdecode.artifacts.sourcedata`: the simulator's ground truth and stimulus logs.
- :mod:`~megdecode.artifacts.stimuli`: the stimulus table and its images.
- :mod:`~megdecode.artifacts.epochs`: one run's epochs, QC row and power spectra.
- :mod:`~megdecode.artifacts.preprocessed`: one subject's preprocessed arrays.
- :mod:`~megdecode.artifacts.latents`: one backbone's latents.
- :mod:`~megdecode.artifacts.predictions`: one decoder's predictions for one subject.
- :mod:`~megdecode.artifacts.brain_model`: a trained brain module's weights.
- :mod:`~megdecode.artifacts.online_model`: one subject's online model (what live decoding needs).
- :mod:`~megdecode.artifacts.evaluation_tables`: the long-format evaluation tables and ``results_long.tsv``.
- :mod:`~megdecode.artifacts.reconstruction`: the decoder generator, reconstructions and image metrics.
- :mod:`~megdecode.artifacts.semantic_readout`, :mod:`~megdecode.artifacts.learning_curve`,
  :mod:`~megdecode.artifacts.fmri`: the semantic readout, the learning curve's files, one fMRI subject.

``tests/test_file_owners.py`` checks that no other module reads a file itself.
"""
