"""Optimisation settings of the brain module (the config's ``training`` section, validated by the schema)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from megdecode.config import dataclass_from_section

# keys of the ``training`` section that choose which jobs exist; rules do not pass them to jobs
JOB_KEYS = ("backbones", "seeds", "shared_model", "threads", "runtime", "gpu")
# keys of the ``training`` section that choose the data (the validation split, made by preprocessing)
DATA_KEYS = ("validation",)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation hyper-parameters (the ``training`` section minus :data:`JOB_KEYS`)."""

    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    stop_on: str
    min_delta: float
    clip_weight: float
    clip_symmetric: bool
    temperature_init: float
    learn_temperature: bool
    device: str
    keep_checkpoints: bool

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """From the validated ``training`` slice (job and data keys dropped); unknown or missing keys are
        errors."""
        skip = (*JOB_KEYS, *DATA_KEYS)
        return dataclass_from_section(cls, {k: v for k, v in values.items() if k not in skip}, "training")
