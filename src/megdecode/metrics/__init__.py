"""Metrics as pure functions; each name states its direction (``top5_acc`` higher is better,
``median_rank`` lower is better).

- :mod:`megdecode.metrics.retrieval`: retrieval of the seen image from a gallery of candidate latents.
- :mod:`megdecode.metrics.image`: image-quality metrics of reconstructions.
"""
