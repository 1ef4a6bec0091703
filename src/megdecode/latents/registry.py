"""Backbone registry: a backbone *kind* is a small class that turns stimuli into one latent per image.

Built-in kinds are imported lazily (a handcrafted job never imports torch). A new kind is a subclass of
:class:`LatentKind` decorated with :func:`register_kind`; add its module to ``BUILTIN_KINDS`` so that the
workflow finds it, and its options to ``src/megdecode/schemas/backbones.schema.yaml``.
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from megdecode.latents.stimuli import Stimuli

# kind name -> module that registers it (imported on first use)
BUILTIN_KINDS: dict[str, str] = {
    "handcrafted": "megdecode.latents.handcrafted",
    "attributes": "megdecode.latents.attributes",
    "huggingface_vision": "megdecode.latents.hf_vision",
    "huggingface_text": "megdecode.latents.hf_text",
    "diffusers_vae": "megdecode.latents.vae",
}

_REGISTRY: dict[str, type[LatentKind]] = {}


@dataclass
class LatentResult:
    """Latents of every stimulus (float32, (n, dim) or (n, tokens, dim)) plus their provenance."""

    latents: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)


class BatchCollector:
    """Fills a preallocated float32 array batch by batch (no second copy from concatenating chunks)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.array: np.ndarray | None = None

    def add(self, rows: list[int], values: np.ndarray) -> None:
        if self.array is None:
            self.array = np.empty((self.n, *values.shape[1:]), dtype=np.float32)
        self.array[rows] = values

    def result(self) -> np.ndarray:
        if self.array is None:
            raise RuntimeError("no batch was computed")
        return self.array


class LatentKind(ABC):
    """One way of computing latents. ``Options`` is the kind's typed hyper-parameter dataclass."""

    kind: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, name: str, options: Any) -> None:
        self.name = name
        self.options = options

    @abstractmethod
    def compute(self, stimuli: Stimuli, threads: int = 1, weights_dir: str | None = None) -> LatentResult:
        """Return the latents of ``stimuli`` in table order (``weights_dir``: a locally built model)."""

    def default_label(self) -> str:
        """Label for tables when the config gives none."""
        return self.name

    @property
    def pretrained(self) -> bool | None:
        """True: pretrained weights; False: randomly initialised weights; None: no learned weights at all."""
        return None


def register_kind(name: str):
    """Class decorator: register a :class:`LatentKind` subclass under ``name``."""

    def decorate(cls: type[LatentKind]) -> type[LatentKind]:
        if not dataclasses.is_dataclass(getattr(cls, "Options", None)):
            raise TypeError(f"latent kind {name!r}: {cls.__name__}.Options must be a dataclass")
        cls.kind = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_kinds() -> list[str]:
    """Every kind name the registry knows (built-in and registered)."""
    return sorted(set(BUILTIN_KINDS) | set(_REGISTRY))


def get_kind(name: str) -> type[LatentKind]:
    """The class registered for kind ``name``, importing its built-in module when needed."""
    if name not in _REGISTRY and name in BUILTIN_KINDS:
        importlib.import_module(BUILTIN_KINDS[name])
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone kind {name!r}; known kinds: {', '.join(available_kinds())}")
    return _REGISTRY[name]


def parse_options(cls: type, options: Mapping[str, Any] | None, where: str) -> Any:
    """Build the dataclass ``cls`` from a config mapping; unknown keys are an error naming ``where``."""
    options = dict(options or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"{where}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(known))}"
        )
    return cls(**options)


def make_backbone(name: str, spec: Mapping[str, Any]) -> LatentKind:
    """Instantiate the backbone ``name`` from its config entry ``{kind, label, options}``."""
    if "kind" not in spec:
        raise ValueError(f"backbones.{name}: missing 'kind' (one of {', '.join(available_kinds())})")
    cls = get_kind(spec["kind"])
    options = parse_options(cls.Options, spec.get("options"), f"backbones.{name}.options")
    return cls(name, options)
