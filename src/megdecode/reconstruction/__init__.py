"""Reconstruction: latents predicted from MEG -> images, through one generator interface.

Generators (config ``reconstruction.generators``): ``decoder`` (a small conv decoder trained on
train-concept stimulus images, the offline default), ``retrieval`` (nearest train-concept gallery image,
the honest reference) and ``versatile_diffusion`` (the paper's generator, diffusers).
Metrics live in :mod:`megdecode.metrics.image`.
"""

from megdecode.reconstruction.base import Generator, Predicted, load_predictions
from megdecode.reconstruction.stage import (
    GENERATORS,
    PAPER_THINGS_MEG,
    reconstruct_subject,
    score_images,
    score_subjects,
    summarise,
)

__all__ = [
    "GENERATORS",
    "PAPER_THINGS_MEG",
    "Generator",
    "Predicted",
    "load_predictions",
    "reconstruct_subject",
    "score_images",
    "score_subjects",
    "summarise",
]
