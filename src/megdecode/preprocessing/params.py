"""Typed hyper-parameters of the preprocessing stage (the ``preprocessing:`` config section)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from megdecode.config import dataclass_from_section


@dataclasses.dataclass(frozen=True)
class PreprocessingParams:
    """Every value of the paper's preprocessing, one config key each (see preprocessing.schema.yaml)."""

    l_freq: float | None
    h_freq: float
    tmin: float
    tmax: float
    sfreq: float
    baseline_tmin: float | None
    baseline_tmax: float
    raw_sfreq: float | None
    bad_channels: tuple[str, ...]
    trial_types: tuple[str, ...]
    on_bad_run: str
    flat_ratio: float
    chunk_s: float
    qc_psd_seconds: float
    val_fraction: float
    average_test: bool
    clamp: float
    scaler_quantiles: tuple[float, float]
    scaler_max_trials: int
    phase: str
    causal_lowpass_order: int
    causal_highpass_order: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PreprocessingParams:
        """Build from the (schema-validated) ``preprocessing`` config section; unknown keys are an error."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        params = dataclass_from_section(cls, values, "preprocessing")
        params.check()
        return params

    def check(self) -> None:
        """Reject inconsistent values with a message that names the key."""
        if not self.tmin < 0 < self.tmax:
            raise ValueError(f"preprocessing.tmin ({self.tmin}) must be < 0 < tmax ({self.tmax})")
        if self.l_freq is not None and not 0 < self.l_freq < self.h_freq:
            raise ValueError(f"preprocessing.l_freq ({self.l_freq}) must be in (0, h_freq={self.h_freq})")
        if self.h_freq >= self.sfreq / 2:
            raise ValueError(
                f"preprocessing.h_freq ({self.h_freq}) must be below the new Nyquist frequency "
                f"({self.sfreq / 2}); lower h_freq or raise sfreq"
            )
        if self.on_bad_run not in ("error", "skip"):
            raise ValueError(f"preprocessing.on_bad_run must be 'error' or 'skip', not {self.on_bad_run!r}")
        if self.phase not in ("zero", "causal"):
            raise ValueError(f"preprocessing.phase must be 'zero' or 'causal', not {self.phase!r}")
        if self.phase == "causal" and self.baseline_tmax > 0:
            raise ValueError(
                f"preprocessing.baseline_tmax ({self.baseline_tmax}) is after the onset; phase: causal takes "
                "the baseline from pre-stimulus samples only (set baseline_tmax <= 0)"
            )
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"preprocessing.val_fraction ({self.val_fraction}) must be in [0, 1)")
        lo, hi = self.scaler_quantiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(
                f"preprocessing.scaler_quantiles {self.scaler_quantiles} must be 0 <= lo < hi <= 100"
            )
        bl_lo = self.tmin if self.baseline_tmin is None else self.baseline_tmin
        if not self.tmin <= bl_lo <= self.baseline_tmax <= self.tmax:
            raise ValueError(
                f"preprocessing baseline ({self.baseline_tmin}, {self.baseline_tmax}) must lie inside "
                f"the epoch ({self.tmin}, {self.tmax})"
            )

    def n_times(self) -> int:
        """Samples per epoch at the output rate (181 for -0.5..1.0 s at 120 Hz)."""
        return round(self.tmax * self.sfreq) - round(self.tmin * self.sfreq) + 1

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
