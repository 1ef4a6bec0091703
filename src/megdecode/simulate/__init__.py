"""A THINGS-MEG-like study generated from a seed: stimuli, sensors, sources, responses, noise.

Entry points used by the workflow: :func:`simulate_stimuli` (rule ``simulate_stimuli``) and
:func:`simulate_subject` (rule ``simulate_subject``). Imported lazily so that rendering stimuli does not
pay for importing mne.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SimulationParams": "megdecode.simulate.params",
    "LOW_LEVEL_FEATURES": "megdecode.simulate.stimuli",
    "simulate_stimuli": "megdecode.simulate.stimuli",
    "simulate_subject": "megdecode.simulate.subject",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'megdecode.simulate' has no attribute {name!r}")
