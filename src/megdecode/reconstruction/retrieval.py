"""Generator ``retrieval``: the gallery image whose latent is nearest (cosine) to the predicted latent.

The honest reference for every reconstruction: by default the gallery holds only ``exp`` images of TRAIN
concepts, so a test image can never be "reconstructed" by retrieving itself. Similarities are computed in the
standardised target space of the predictions (gallery latents standardised with the same training statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from megdecode.artifacts.latents import Latents
from megdecode.reconstruction.base import Predicted


def cosine_nearest(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Index of the most cosine-similar gallery row for each query row (ties: lowest index)."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    return np.argmax(q @ g.T, axis=1)


class RetrievalGenerator:
    """Nearest gallery image to each predicted latent of ``backbone``."""

    name = "retrieval"

    def __init__(
        self,
        backbone: str,
        latents: Latents,
        gallery_ids: Sequence[str],
        load_gallery_images: Callable[[Sequence[str]], np.ndarray],
    ) -> None:
        if not len(gallery_ids):
            raise ValueError("retrieval gallery is empty: no training-concept image has a latent")
        self.backbone = backbone
        self.gallery_ids = [str(i) for i in gallery_ids]
        self.gallery = latents.get(self.gallery_ids, np.float32)
        self._load = load_gallery_images
        self.retrieved_ids: list[str] = []

    def generate(self, predictions: Mapping[str, Predicted]) -> np.ndarray:
        pred = predictions[self.backbone]
        gallery = (self.gallery - pred.target_mean) / pred.target_std
        nearest = cosine_nearest(pred.standardised(), gallery)
        self.retrieved_ids = [self.gallery_ids[k] for k in nearest]
        return self._load(self.retrieved_ids)
