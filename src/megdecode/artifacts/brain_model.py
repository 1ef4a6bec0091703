"""A trained brain module: ``model.safetensors`` with its config, subjects and latent shape as metadata.

:func:`save_trained_brain` is called by training; :func:`load_trained_brain` rebuilds the module for decoding
(``megdecode.models.RealtimeDecoder`` / ``StreamingDecoder``) and for the attention figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from megdecode import io
from megdecode.models import BrainModule, BrainModuleConfig

PREFIX = "brain."  # state keys of the brain module (the rest: the CLIP loss's temperature)
REQUIRED_METADATA = ("brain_module", "subjects", "latent_shape")
# All metadata under one key, as sorted JSON: safetensors writes several metadata keys in a per-process
# random order, which would make the same weights give different bytes.
METADATA_KEY = "megdecode"


@dataclass
class TrainedBrain:
    """A brain module read back from a training job's ``model.safetensors``."""

    brain: BrainModule
    subjects: list[str]
    latent_shape: tuple[int, ...]

    def subject_index(self, subject: str) -> int:
        if subject not in self.subjects:
            raise KeyError(f"subject {subject!r} was not trained in this model (subjects: {self.subjects})")
        return self.subjects.index(subject)


def save_trained_brain(
    path: Path | str,
    state: Mapping[str, torch.Tensor],
    brain_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    seed: int,
    subjects: Sequence[str],
    latent_shape: Sequence[int],
) -> None:
    """Write the weights (``brain.*`` keys and any others) with the metadata that rebuilds the module."""
    from safetensors.torch import save_file

    meta = {
        "brain_module": json.dumps(dict(brain_cfg)),
        "training": json.dumps(dict(training_cfg)),
        "seed": str(seed),
        "subjects": json.dumps(list(subjects)),
        "latent_shape": json.dumps(list(latent_shape)),
    }
    with io.atomic_output(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in state.items()},
            str(tmp),
            metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)},
        )


def read_state(path: Path | str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a ``model.safetensors``, in one read; a bad file is named."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (FileNotFoundError, SafetensorError) as err:
        raise ValueError(
            f"cannot read {path}: {err}. Snakemake finds the file up to date, so a plain rerun fails again: "
            f"delete {path} and run the same snakemake command again (or rerun its rule with --forcerun "
            "<rule>, e.g. --forcerun train_brain), which trains and writes it anew"
        ) from err
    if METADATA_KEY in meta:
        meta = json.loads(meta[METADATA_KEY])
    return meta, state


def load_trained_brain(path: Path | str) -> TrainedBrain:
    """Rebuild the brain module (evaluation mode, CPU) from a ``model.safetensors`` written by training."""
    meta, state = read_state(path)
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise ValueError(f"{path} lacks metadata {missing}: not written by megdecode's training")
    subjects = list(json.loads(meta["subjects"]))
    latent_shape = tuple(json.loads(meta["latent_shape"]))
    weights = {k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)}
    time_weight = weights.get("aggregate.time_weight")
    # models trained before the output stage was configurable used the linear one
    brain_cfg = {"output_stage": "linear", **json.loads(meta["brain_module"])}
    brain = BrainModule(
        BrainModuleConfig.from_dict(brain_cfg),
        weights["spatial.positions"],
        len(subjects),
        0 if time_weight is None else len(time_weight),
        latent_shape,
    )
    brain.load_state_dict(weights)
    return TrainedBrain(brain.eval(), subjects, latent_shape)
