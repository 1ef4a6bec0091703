"""The simulated study seen through EEG electrodes: positions, forward fields, noise and rapid presentation.

The same subjects (anatomy, dipoles, responses) as the MEG simulation, measured by a 10-05 montage on the
subject's spherical head (``eeg.simulation``; values and sources in docs/eeg.md):

- electrodes: the directions of the montage's electrodes from the centre of the sphere fitted to them, placed
  on the subject's head sphere (:func:`electrode_positions`);
- forward fields: MNE's four-shell sphere model (its default radii and conductivities) of the subject's
  sphere, every electrode re-referenced to the average of the montage (:func:`eeg_gain`), in uV per Am;
- noise: the same background dipoles as the MEG simulation plus white electrode noise
  (``electrode_uv_rthz``), so the noise covariance keeps the form of
  :class:`~megdecode.learning_curve.epochs.NoiseModel`;
- rapid serial presentation: images every ``soa_s`` in sequences of ``sequence_length``, so an epoch also
  holds the responses to its neighbours (:func:`neighbour_offsets`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import mne
import numpy as np

from megdecode.config import dataclass_from_section
from megdecode.simulate.sources import Dipoles, sphere_gain

UV_PER_V = 1e6


@dataclasses.dataclass(frozen=True)
class EegSimParams:
    """The ``eeg.simulation`` section (defaults and sources: eeg.schema.yaml)."""

    montage: str
    channels: tuple[str, ...]
    average_reference: bool
    electrode_uv_rthz: float
    soa_s: float
    image_duration_s: float
    sequence_length: int
    l_freq: float

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EegSimParams:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        return dataclass_from_section(cls, values, "eeg.simulation")

    def picks(self, channel_regex: str) -> list[str]:
        """The montage's channels whose names match ``channel_regex`` from their start, in montage order."""
        kept = [c for c in self.channels if re.match(channel_regex, c)]
        if not kept:
            raise ValueError(f"no channel of eeg.simulation.channels matches {channel_regex!r}")
        return kept


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius of the least-squares sphere through ``points`` (n, 3)."""
    a = np.column_stack([2 * points, np.ones(len(points))])
    sol, *_ = np.linalg.lstsq(a, (points**2).sum(axis=1), rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def electrode_positions(
    montage: str, channels: Sequence[str], r0: np.ndarray, head_radius: float
) -> np.ndarray:
    """(n, 3) positions (head frame, m) of ``channels`` of the MNE ``montage`` on the sphere of centre ``r0``
    and radius ``head_radius``: each electrode keeps its direction from the centre of the sphere fitted to
    the montage's electrodes ``channels``."""
    ch_pos = mne.channels.make_standard_montage(montage).get_positions()["ch_pos"]
    missing = [c for c in channels if c not in ch_pos]
    if missing:
        raise ValueError(f"eeg.simulation.channels {missing} are not in the {montage} montage")
    pos = np.array([ch_pos[c] for c in channels], float)
    centre, _ = fit_sphere(pos)
    dirs = pos - centre
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return np.asarray(r0, float) + head_radius * dirs


def eeg_gain(
    positions: np.ndarray,
    dipoles: Dipoles,
    r0: np.ndarray,
    head_radius: float,
    average_reference: bool,
) -> np.ndarray:
    """Gain (electrodes, dipoles) in uV/Am of fixed-orientation dipoles at electrodes ``positions``: MNE's
    four-shell sphere model (default radii and conductivities), re-referenced to the electrodes' average when
    ``average_reference``."""
    names = [f"E{i:03d}" for i in range(len(positions))]
    info = mne.create_info(names, 1000.0, "eeg", verbose="error")
    montage = mne.channels.make_dig_montage(dict(zip(names, positions, strict=True)), coord_frame="head")
    info.set_montage(montage, verbose="error")
    gain = sphere_gain(info, dipoles, r0, head_radius) * UV_PER_V
    return gain - gain.mean(axis=0, keepdims=True) if average_reference else gain


def neighbour_offsets(p: EegSimParams, tmin: float, tmax: float, response_s: float) -> np.ndarray:
    """Positions (in images, 0 excluded) of the neighbours whose responses (``response_s`` long from their
    onset) reach the epoch ``tmin`` .. ``tmax`` s around the image's onset, ascending."""
    first = int(np.floor((tmin - response_s) / p.soa_s)) + 1
    last = int(np.ceil(tmax / p.soa_s)) - 1
    return np.array([k for k in range(first, last + 1) if k != 0], dtype=int)


def neighbour_probability(p: EegSimParams, offsets: np.ndarray) -> np.ndarray:
    """Chance that a trial has a neighbour at each offset: its position in its sequence is uniform."""
    return np.clip(p.sequence_length - np.abs(offsets), 0, None) / p.sequence_length
