"""The learning-curve experiment: retrieval as training trials per subject grow, in the
simulator's linear and nonlinear worlds, for the brain module, ridge and an oracle ceiling
(docs/learning-curve.md).

- :mod:`.epochs`: epochs drawn directly at the preprocessed rate, with a noise covariance known exactly;
- :mod:`.oracle`: retrieval by the generative model (Mahalanobis distance to the noiseless responses);
- :mod:`.experiment`: one job (world, subject, replicate seed, training-set size), every decoder;
- :mod:`.fmri`: the same curve on the simulated 7T fMRI study (fMRI ridge, voxel MLP, oracle);
- :mod:`.summary`: means and CIs over (subject, seed) units, the paired test, slopes, the figure (both
  modalities).
"""
