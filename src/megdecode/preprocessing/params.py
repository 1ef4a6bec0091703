"""Typed hyper-parameters of the preprocessing stage (the ``preprocessing:`` config section)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class PreprocessingParams:
    """Every value of the paper's preprocessing, one config key each (see preprocessing.schema.yaml)."""

    l_freq: float | None = 0.1
    h_freq: float = 40.0
    tmin: float = -0.5
    tmax: float = 1.0
    sfreq: float = 120.0
    baseline_tmin: float | None = None
    baseline_tmax: float = 0.0
    raw_sfreq: float | None = None
    bad_channels: tuple[str, ...] = ("MRO11-1609",)
    trial_types: tuple[str, ...] = ("exp", "test", "catch")
    on_bad_run: str = "error"
    flat_ratio: float = 1e-6
    chunk_s: float = 30.0
    qc_psd_seconds: float = 30.0
    val_fraction: float = 0.2
    average_test: bool = True
    clamp: float = 20.0
    scaler_quantiles: tuple[float, float] = (25.0, 75.0)
    scaler_max_trials: int = 1000

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PreprocessingParams:
        """Build from the (schema-validated) ``preprocessing`` config section; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ValueError(f"unknown preprocessing keys {unknown}; valid keys: {sorted(names)}")
        kwargs: dict[str, Any] = {}
        for key, value in cfg.items():
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        params = cls(**kwargs)
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
