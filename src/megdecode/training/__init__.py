"""The train stage: the brain module (:mod:`.brain`) and the ridge baseline (:mod:`.ridge`) per job.

- :mod:`.config`: the optimisation settings; :mod:`.data`: trials on the model's channel set;
- :mod:`.loop`: epochs, early stopping, inference (losses: :mod:`megdecode.models.losses`);
- :mod:`.checkpoint`: per-epoch checkpoints for resuming a killed job.
"""
