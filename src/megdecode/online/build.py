"""Build an :class:`~megdecode.online.decoder.OnlineDecoder` from a workflow's files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from megdecode.artifacts.brain_model import load_trained_brain
from megdecode.artifacts.latents import read_latents
from megdecode.artifacts.predictions import read_predictions
from megdecode.artifacts.preprocessed import read_subject
from megdecode.online.decoder import Gallery, OnlineDecoder, OnlineSettings, SubjectModel
from megdecode.preprocessing.params import PreprocessingParams

GALLERIES = ("test_large", "test_small", "test")  # "test": the union of both test sets' images


def gallery_from_files(
    predictions_path: Path | str, latents_dir: Path | str, split: str = "test_large"
) -> Gallery:
    """The test images of ``split`` (sorted unique ids, as in the evaluation), standardised with the
    training images' statistics stored in ``predictions.npz``."""
    if split not in GALLERIES:
        raise ValueError(f"gallery {split!r} is not one of {GALLERIES}")
    preds = read_predictions(predictions_path)
    splits = ("test_large", "test_small") if split == "test" else (split,)
    ids = np.unique(np.concatenate([preds.image_ids[s] for s in splits if s in preds.image_ids]).astype(str))
    if not len(ids):
        raise ValueError(f"{predictions_path}: no {split} image ids; no gallery to retrieve from")
    return Gallery(ids, preds.candidates(read_latents(latents_dir), ids))


def preprocessing_of(preprocessed_dir: Path | str) -> tuple[PreprocessingParams, dict[str, Any], list[str]]:
    """(params, info.json, channel names) of a preprocessed subject folder."""
    subject = read_subject(preprocessed_dir)
    if "preprocessing" not in subject.info or "scaler" not in subject.info:
        raise ValueError(f"{preprocessed_dir}/info.json lacks the preprocessing or scaler record; rerun it")
    return PreprocessingParams.from_config(subject.info["preprocessing"]), subject.info, subject.channels


def load_subject_model(model_path: Path | str, preprocessed_dir: Path | str, subject: str) -> SubjectModel:
    """``subject``'s :class:`SubjectModel`: the trained ``model.safetensors`` with the subject's
    preprocessing (``info.json``: parameters, fitted scaler, recording rate; ``channels.tsv``)."""
    trained = load_trained_brain(model_path)
    params, info, channels = preprocessing_of(preprocessed_dir)
    return SubjectModel(
        trained.brain,
        trained.subject_index(subject),
        params,
        channels,
        np.asarray(info["scaler"]["center"]),
        np.asarray(info["scaler"]["scale"]),
        info.get("raw_sfreq"),
    )


def load_online_decoder(
    model_path: Path | str,
    preprocessed_dir: Path | str,
    gallery: Gallery,
    subject: str,
    raw_sfreq: float,
    stream_channels: Sequence[str],
    settings: OnlineSettings | None = None,
    **options: Any,
) -> OnlineDecoder:
    """The online decoder of ``subject`` (:func:`load_subject_model`) with ``gallery``. ``options`` go
    to :class:`OnlineDecoder` (``events``, ``on_record``); ``settings`` names the decoder
    ``sub-<subject>`` unless it has a name of its own."""
    settings = settings if settings is not None else OnlineSettings()
    if settings.name == OnlineSettings.name:
        settings = settings.replace(name=f"sub-{subject}")
    model = load_subject_model(model_path, preprocessed_dir, subject)
    return OnlineDecoder(model, gallery, raw_sfreq, stream_channels, settings, **options)
