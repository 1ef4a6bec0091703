"""Typed hyper-parameters of the simulated study, built from the `simulation:` config section."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from megdecode.config import dataclass_from_section

#: Attribute values the renderer knows (config may choose a subset; the schema's enums list the same values,
#: its defaults the first 6 shapes, 6 colours and 4 textures). 12 x 12 x 8 = 1,152 concepts in all.
SHAPES = (
    "circle", "square", "triangle", "star", "cross", "ring",
    "diamond", "ellipse", "crescent", "heart", "arrow", "frame",
)  # fmt: skip
COLOURS = (
    "red", "green", "blue", "yellow", "purple", "cyan",
    "orange", "pink", "brown", "lime", "navy", "magenta",
)  # fmt: skip
TEXTURES = ("solid", "stripes", "dots", "checker", "grid", "rings", "waves", "rays")


@dataclasses.dataclass(frozen=True)
class StimulusParams:
    """How many concepts/exemplars exist and how they are drawn."""

    shapes: tuple[str, ...]
    colours: tuple[str, ...]
    textures: tuple[str, ...]
    n_train_concepts: int
    n_test_concepts: int
    exemplars_per_train_concept: int
    exemplars_per_test_concept: int
    n_catch_images: int
    image_size: int


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

    sensor_ft_rthz: float
    brain_nam: float
    n_brain_sources: int
    brain_exponent: float
    alpha_nam: float
    alpha_freq: float
    line_ft: float
    line_freq: float
    drift_ft: float
    n_bad_channels: int


@dataclasses.dataclass(frozen=True)
class NonlinearWorldParams:
    """The nonlinear world's departures from the linear one (``simulation.responses.nonlinear``)."""

    early_jitter_sd: float
    late_jitter_sd: float
    gain_sd: float
    naka_rushton: bool
    conjunctive_codes: bool


@dataclasses.dataclass(frozen=True)
class TimingParams:
    """Trial timing of the stimulus program (s)."""

    image_duration: float
    gap_mean: float
    gap_jitter: float
    lead_in: float
    lead_out: float
    trigger_duration: float
    photodiode_lag_min: float
    photodiode_lag_max: float


@dataclasses.dataclass(frozen=True)
class StimulusWorldParams:
    """What the stimuli job needs: the images and how they are encoded (``stimuli``, ``responses``, codes)."""

    stimuli: StimulusParams
    early: ComponentParams
    late: ComponentParams
    evoked_nam: float
    latency_jitter_sd: float
    gain_sd: float
    trigger_codes: Mapping[str, int]
    world: str
    nonlinear: NonlinearWorldParams

    @property
    def is_nonlinear(self) -> bool:
        """True in the nonlinear world (``responses.world: nonlinear``)."""
        return self.world == "nonlinear"

    @property
    def naka_rushton(self) -> bool:
        """Early amplitudes are Naka-Rushton functions of the image statistics (else linear in z-scores)."""
        return self.is_nonlinear and self.nonlinear.naka_rushton

    @property
    def conjunctive_codes(self) -> bool:
        """Late codes are (shape, colour) pair + concept patterns (else a sum of per-attribute patterns)."""
        return self.is_nonlinear and self.nonlinear.conjunctive_codes

    @property
    def trial_gain_sd(self) -> float:
        """SD of the log per-trial gain in this world."""
        return self.nonlinear.gain_sd if self.is_nonlinear else self.gain_sd

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> StimulusWorldParams:
        """From the ``stimuli``, ``responses`` and ``trigger_codes`` keys of the validated section."""
        st = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["stimuli"].items()}
        resp = cfg["responses"]

        def component(name: str) -> ComponentParams:
            c = {**resp[name], "latencies": tuple(float(x) for x in resp[name]["latencies"])}
            return dataclass_from_section(ComponentParams, c, f"simulation.responses.{name}")

        return cls(
            stimuli=dataclass_from_section(StimulusParams, st, "simulation.stimuli"),
            early=component("early"),
            late=component("late"),
            evoked_nam=float(resp["evoked_nam"]),
            latency_jitter_sd=float(resp["latency_jitter_sd"]),
            gain_sd=float(resp["gain_sd"]),
            trigger_codes=dict(cfg["trigger_codes"]),
            world=str(resp["world"]),
            nonlinear=dataclass_from_section(
                NonlinearWorldParams, resp["nonlinear"], "simulation.responses.nonlinear"
            ),
        )


@dataclasses.dataclass(frozen=True)
class SimulationParams(StimulusWorldParams):
    """Every knob of the simulator; see src/megdecode/schemas/simulation.schema.yaml for meanings."""

    timing: TimingParams
    noise: NoiseParams
    sfreq: float
    catch_per_run: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SimulationParams:
        """Build from the (schema-validated, defaults-filled) ``simulation`` config section."""
        world = StimulusWorldParams.from_config(cfg)
        return cls(
            **{f.name: getattr(world, f.name) for f in dataclasses.fields(world)},
            timing=dataclass_from_section(TimingParams, cfg["timing"], "simulation.timing"),
            noise=dataclass_from_section(NoiseParams, cfg["noise"], "simulation.noise"),
            sfreq=float(cfg["sfreq"]),
            catch_per_run=int(cfg["catch_per_run"]),
        )
