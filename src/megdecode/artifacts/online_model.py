"""One subject's online model: everything ``megdecode online`` needs, in one folder that can be copied to
the acquisition computer: ``{R}/realtime/{backbone}/sub-{subject}/seed-{seed}/online_model/``.

- ``model.safetensors``: a copy of the trained brain module (:mod:`.brain_model`);
- ``gallery.npz``: ``image_id`` (n,) and ``latent`` (n, dim) float32, the gallery's true latents
  standardised like the model's predictions (the training images' statistics), then unit norm;
- ``online.json``: subject, backbone, seed and gallery split; the preprocessing record (parameters,
  phase) and fitted robust scaler of the subject's ``info.json``; the training recordings' rate and the
  model's channels (``channels.tsv`` order); the onsets (trigger channel, trigger codes, photodiode
  channel, lag and threshold, decoded trial types); each gallery image's file, relative to the stimulus
  folder. ``trigger_codes`` is null when the config has none: then only a replay with onsets from
  ``events.tsv`` can use it (set ``bids.trigger_codes`` for live decoding).

:func:`write_online_model` (from the workflow's files) is called by the ``realtime_model`` rule,
:func:`save_online_model` (from the pieces) by it and by tests; :func:`read_online_model` by the replay and
the ``megdecode online`` command.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from megdecode import io

WEIGHTS, GALLERY, METADATA = "model.safetensors", "gallery.npz", "online.json"
FORMAT = 1
ONSET_KEYS = (
    "stim_channel",
    "trigger_codes",
    "photodiode_channel",
    "photodiode_max_lag_s",
    "photodiode_threshold",
)


@dataclass(frozen=True)
class OnlineModel:
    """An online model read back (:func:`read_online_model`)."""

    subject_model: Any  # megdecode.online.SubjectModel
    gallery: Any  # megdecode.online.Gallery
    subject: str
    backbone: str
    seed: int
    gallery_split: str
    onsets: Mapping[str, Any]  # ONSET_KEYS
    decode_types: tuple[str, ...]
    images: Mapping[str, str]  # gallery image id -> file, relative to the stimulus folder
    path: Path

    @property
    def phase(self) -> str:
        return self.subject_model.params.phase

    def settings(self, **overrides: Any) -> Any:
        """:class:`~megdecode.online.OnlineSettings` with onsets from the trigger channel (and photodiode)
        as recorded here, named ``sub-<subject>``; ``overrides`` replace any field."""
        from megdecode.online.decoder import OnlineSettings

        onsets = dict(self.onsets)
        return OnlineSettings(
            stim_channel=onsets["stim_channel"],
            trigger_codes=onsets["trigger_codes"],
            photodiode_channel=onsets["photodiode_channel"],
            photodiode_max_lag_s=float(onsets["photodiode_max_lag_s"]),
            photodiode_threshold=float(onsets["photodiode_threshold"]),
            decode_types=self.decode_types,
            name=f"sub-{self.subject}",
        ).replace(**overrides)


@dataclass(frozen=True)
class OnlineModelRecord:
    """What ``online.json`` records besides the weights and the gallery (see the module docstring)."""

    subject: str
    backbone: str
    seed: int
    gallery_split: str
    preprocessing: Mapping[str, Any]  # the preprocessing config section the model was trained with
    recorded_sfreq: float | None
    channels: Sequence[str]
    center: Sequence[float]
    scale: Sequence[float]
    onsets: Mapping[str, Any]
    images: Mapping[str, str]
    decode_types: Sequence[str] = ("exp", "test")


def save_online_model(
    directory: Path | str, weights: Path | str, record: OnlineModelRecord, gallery: Any
) -> None:
    """Write an online model folder, atomically: a copy of ``weights`` (a ``model.safetensors``), the
    ``gallery`` (a :class:`~megdecode.online.Gallery`) and ``record``."""
    from megdecode.online.decoder import OnlineSettings
    from megdecode.preprocessing.params import PreprocessingParams

    missing = [k for k in ONSET_KEYS if k not in record.onsets]
    if missing:
        raise ValueError(f"online model of sub-{record.subject}: onsets lack {missing}")
    params = PreprocessingParams.from_config(record.preprocessing)  # checked before anything is written
    if not len(record.channels) == len(record.center) == len(record.scale):
        raise ValueError(f"online model of sub-{record.subject}: channels, center and scale differ in length")
    meta = {
        "format": FORMAT,
        **{k: v for k, v in dataclasses.asdict(record).items() if k not in ("center", "scale")},
        "phase": params.phase,
        "scaler": {"center": [float(v) for v in record.center], "scale": [float(v) for v in record.scale]},
        "decode_types": list(record.decode_types or OnlineSettings().decode_types or ()),
    }
    with io.atomic_output(directory) as tmp:
        tmp.mkdir(parents=True)
        shutil.copyfile(weights, tmp / WEIGHTS)
        io.save_npz({"image_id": gallery.image_ids.astype(str), "latent": gallery.unit}, tmp / GALLERY)
        io.write_json(meta, tmp / METADATA)


def write_online_model(
    directory: Path | str,
    *,
    model_path: Path | str,
    preprocessed_dir: Path | str,
    predictions_path: Path | str,
    latents_dir: Path | str,
    stimuli_path: Path | str,
    subject: str,
    backbone: str,
    seed: int,
    gallery_split: str,
    onsets: Mapping[str, Any],
) -> None:
    """Write the online model of ``subject`` from the workflow's files (see the module docstring)."""
    from megdecode.artifacts.brain_model import load_trained_brain
    from megdecode.artifacts.stimuli import read_stimuli
    from megdecode.online.build import gallery_from_files, preprocessing_of

    load_trained_brain(model_path).subject_index(subject)  # the subject must be in the model
    _, info, channels = preprocessing_of(preprocessed_dir)
    gallery = gallery_from_files(predictions_path, latents_dir, gallery_split)
    files = read_stimuli(stimuli_path)["file"]
    record = OnlineModelRecord(
        subject=subject,
        backbone=backbone,
        seed=int(seed),
        gallery_split=gallery_split,
        preprocessing=info["preprocessing"],
        recorded_sfreq=info.get("raw_sfreq"),
        channels=list(channels),
        center=info["scaler"]["center"],
        scale=info["scaler"]["scale"],
        onsets={k: onsets[k] for k in ONSET_KEYS if k in onsets},
        images={str(i): str(files.get(i, "")) for i in gallery.image_ids},
    )
    save_online_model(directory, model_path, record, gallery)


def read_online_model(directory: Path | str) -> OnlineModel:
    """Read an online model folder; a missing or foreign file names the folder and the rule to rerun."""
    from megdecode.artifacts.brain_model import load_trained_brain
    from megdecode.online.decoder import Gallery, SubjectModel
    from megdecode.preprocessing.params import PreprocessingParams

    path = Path(directory)
    absent = [name for name in (WEIGHTS, GALLERY, METADATA) if not (path / name).is_file()]
    if absent:
        raise FileNotFoundError(
            f"{path} is not an online model folder (missing {absent}); build one with "
            "`snakemake --cores 1 <results>/realtime/<backbone>/sub-<subject>/seed-<seed>/online_model`"
        )
    meta = io.read_json(path / METADATA)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path / METADATA}: format {meta.get('format')!r}, expected {FORMAT}; rebuild it")
    trained = load_trained_brain(path / WEIGHTS)
    subject = str(meta["subject"])
    model = SubjectModel(
        trained.brain,
        trained.subject_index(subject),
        PreprocessingParams.from_config(meta["preprocessing"]),
        [str(c) for c in meta["channels"]],
        np.asarray(meta["scaler"]["center"], dtype=np.float64),
        np.asarray(meta["scaler"]["scale"], dtype=np.float64),
        meta["recorded_sfreq"],
    )
    arrays = io.load_npz(path / GALLERY)
    return OnlineModel(
        subject_model=model,
        gallery=Gallery(arrays["image_id"].astype(str), arrays["latent"]),
        subject=subject,
        backbone=str(meta["backbone"]),
        seed=int(meta["seed"]),
        gallery_split=str(meta["gallery_split"]),
        onsets=dict(meta["onsets"]),
        decode_types=tuple(meta["decode_types"]),
        images=dict(meta["images"]),
        path=path,
    )
