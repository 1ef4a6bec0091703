"""The learning-curve experiment: retrieval as training trials per subject grow, in the simulator's linear
and nonlinear worlds, for the brain module, ridge and two ceilings (docs/learning-curve.md).

- :mod:`.epochs`: epochs drawn directly at the preprocessed rate, with a noise covariance known exactly;
- :mod:`.oracle`: retrieval by the generative model: the image oracle (Mahalanobis distance to each test
  image's noiseless response) and the fair ceiling (a Bayes template matcher that knows only what the
  training concepts teach);
- :mod:`.experiment`: one job (world, subject, replicate seed, training-set size), every decoder;
- :mod:`.fmri`: the same curve on the simulated 7T fMRI study (fMRI ridge, voxel MLP, image oracle);
- :mod:`.eeg`: the same curve on the simulated EEG study (the subjects through scalp electrodes, rapid serial
  presentation; ridge, brain module, image oracle);
- :mod:`.summary`: means and CIs over (subject, seed) units, the paired test, slopes, the figure (every
  modality);
- :mod:`.compare`: two runs of the curve compared cell by cell (a probe against the main run).

It is a second pipeline that runs in one process per job: it skips the files of the simulated study
(sourcedata, BIDS, epochs, preprocessed arrays) and calls the same code in memory. :data:`SEAMS` lists every
other part of the package it calls and why; ``tests/test_learning_curve.py`` checks that its imports stay
within them, so a new dependency is a decision written here.
"""

#: the other parts of megdecode the learning curve calls (top-level package or module -> what it takes)
SEAMS = {
    "artifacts": "the files it reads (stimuli, ground truth, latents) and writes (its scores and trials)",
    "simulate": "the simulated world: anatomy, sources, sensors and electrodes, responses, fMRI voxel code",
    "preprocessing": "sensor_layout: the 2-D sensor positions the brain module sees (as in preprocessing)",
    "training": "the training loop, configuration and trial sets of rule train_brain (and of the fMRI MLP)",
    "models": "the brain module's and the voxel MLP's configurations and modules",
    "ridge": "the ridge baseline of rule train_ridge (fit_ridge, time binning)",
    "metrics": "retrieval scores and chance levels (megdecode.metrics.retrieval)",
    "reporting": "the figure style and writer of the report (reporting.common)",
    "config": "settings dataclasses from a validated config slice",
    "seeds": "one seed rule for every draw",
}
