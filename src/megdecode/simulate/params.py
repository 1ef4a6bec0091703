"""Typed hyper-parameters of the simulated study, built from the `simulation:` config section."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Attribute values the renderer knows (config may choose a subset).
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
TEXTURES = ("solid", "stripes", "dots", "checker")


@dataclasses.dataclass(frozen=True)
class StimulusParams:
    """How many concepts/exemplars exist and how they are drawn."""

    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOURS
    textures: tuple[str, ...] = TEXTURES
    n_train_concepts: int = 48
    n_test_concepts: int = 24
    exemplars_per_train_concept: int = 8
    exemplars_per_test_concept: int = 4
    n_catch_images: int = 10
    image_size: int = 128


@dataclasses.dataclass(frozen=True)
class ComponentParams:
    """One evoked component: Gaussian bump(s) at ``latencies`` (s) with ``width`` (s, sd)."""

    latencies: tuple[float, ...]
    width: float
    amplitude_nam: float
    n_dipoles: int


@dataclasses.dataclass(frozen=True)
class NoiseParams:
    """Noise amplitudes (dipole moments in nAm, sensor fields in fT)."""

    sensor_ft_rthz: float = 4.0
    brain_nam: float = 15.0
    n_brain_sources: int = 40
    brain_exponent: float = 1.0
    alpha_nam: float = 20.0
    alpha_freq: float = 10.0
    line_ft: float = 300.0
    line_freq: float = 60.0
    drift_ft: float = 2000.0
    n_bad_channels: int = 2


@dataclasses.dataclass(frozen=True)
class TimingParams:
    """Trial timing of the stimulus program (s)."""

    image_duration: float = 0.5
    gap_mean: float = 1.0
    gap_jitter: float = 0.2
    lead_in: float = 3.0
    lead_out: float = 3.0
    trigger_duration: float = 0.05
    photodiode_lag_min: float = 0.008
    photodiode_lag_max: float = 0.020


@dataclasses.dataclass(frozen=True)
class SimulationParams:
    """Every knob of the simulator; see workflow/schemas/simulation.schema.yaml for meanings."""

    stimuli: StimulusParams
    timing: TimingParams
    noise: NoiseParams
    early: ComponentParams
    late: ComponentParams
    sfreq: float = 600.0
    catch_per_run: int = 12
    evoked_nam: float = 20.0
    latency_jitter_sd: float = 0.01
    gain_sd: float = 0.2
    trigger_codes: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"exp": 1, "test": 2, "catch": 4}
    )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SimulationParams:
        """Build from the (schema-validated, defaults-filled) `simulation` config section."""
        st = dict(cfg.get("stimuli", {}))
        for key in ("shapes", "colours", "textures"):
            if key in st:
                st[key] = tuple(st[key])
        resp = cfg.get("responses", {})

        def component(name: str) -> ComponentParams:
            c = dict(resp.get(name, {}))
            c["latencies"] = tuple(float(x) for x in c["latencies"])
            return ComponentParams(**c)

        return cls(
            stimuli=StimulusParams(**st),
            timing=TimingParams(**cfg.get("timing", {})),
            noise=NoiseParams(**cfg.get("noise", {})),
            early=component("early"),
            late=component("late"),
            sfreq=float(cfg.get("sfreq", 600.0)),
            catch_per_run=int(cfg.get("catch_per_run", 12)),
            evoked_nam=float(resp.get("evoked_nam", 20.0)),
            latency_jitter_sd=float(resp.get("latency_jitter_sd", 0.01)),
            gain_sd=float(resp.get("gain_sd", 0.2)),
            trigger_codes=dict(cfg.get("trigger_codes", {"exp": 1, "test": 2, "catch": 4})),
        )


def label_key(label: str) -> int:
    """A stable integer for a BIDS label (independent of its position in the config list)."""
    return zlib.crc32(label.encode("utf-8"))


def make_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator seeded from the config seed plus string/int keys (stage name, labels)."""
    ints = [int(seed)] + [label_key(k) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(ints))
