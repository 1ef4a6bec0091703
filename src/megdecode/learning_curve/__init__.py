"""The learning-curve experiment (issue #15): retrieval as training trials per subject grow, in the
simulator's linear and nonlinear worlds, for the brain module, ridge and two ceilings
(docs/learning-curve.md).

- :mod:`.epochs`: epochs drawn directly at the preprocessed rate, with a noise covariance known exactly;
- :mod:`.oracle`: retrieval by the generative model: the image oracle (Mahalanobis distance to each test
  image's noiseless response) and the fair ceiling (a Bayes template matcher that knows only what the
  training concepts teach);
- :mod:`.experiment`: one job (world, subject, replicate seed, training-set size), every decoder;
- :mod:`.fmri`: the same curve on the simulated 7T fMRI study (fMRI ridge, voxel MLP, image oracle),
  issue #18;
- :mod:`.summary`: means and CIs over (subject, seed) units, the paired test, slopes, the figure (both
  modalities).
"""
