"""Dipole sources (occipital, temporal, background, alpha) and their forward fields in a sphere head model."""

from __future__ import annotations

import dataclasses

import mne
import numpy as np

# Template centres (head frame, metres; x right, y front, z up) and spread of each region.
REGIONS = {
    "occipital": {"centre": (0.0, -0.065, 0.045), "spread": (0.03, 0.008, 0.012), "mirror": False},
    "occipito-temporal": {"centre": (0.045, -0.04, 0.02), "spread": (0.008, 0.02, 0.012), "mirror": True},
    "alpha": {"centre": (0.0, -0.06, 0.06), "spread": (0.02, 0.01, 0.01), "mirror": False},
}


@dataclasses.dataclass(frozen=True)
class Dipoles:
    """Positions (n, 3) and unit orientations (n, 3) in the head frame."""

    pos: np.ndarray
    ori: np.ndarray
    region: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "pos_m": self.pos.round(6).tolist(),
            "ori": self.ori.round(6).tolist(),
            "region": list(self.region),
        }


def _tangential(pos: np.ndarray, r0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random unit orientations tangential to the sphere (radial dipoles are silent in MEG)."""
    radial = pos - r0
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    v = rng.standard_normal(pos.shape)
    v -= (v * radial).sum(1, keepdims=True) * radial
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def region_dipoles(region: str, n: int, r0: np.ndarray, rng: np.random.Generator) -> Dipoles:
    """``n`` subject-specific dipoles scattered around a region template (mirrored regions alternate
    hemispheres; the others straddle the midline)."""
    spec = REGIONS[region]
    centre = np.asarray(spec["centre"], float)
    pos = centre + rng.normal(0, 1, (n, 3)) * np.asarray(spec["spread"])
    if spec["mirror"]:
        pos[:, 0] = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * np.abs(pos[:, 0])
    pos = _inside(pos, r0, 0.072)
    return Dipoles(pos, _tangential(pos, r0, rng), (region,) * n)


def background_dipoles(n: int, r0: np.ndarray, rng: np.random.Generator) -> Dipoles:
    """Spontaneous-activity dipoles spread over the cortex shell (upper hemisphere of the sphere)."""
    d = rng.standard_normal((n, 3))
    d[:, 2] = np.abs(d[:, 2])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pos = r0 + d * rng.uniform(0.05, 0.07, (n, 1))
    return Dipoles(pos, _tangential(pos, r0, rng), ("background",) * n)


def _inside(pos: np.ndarray, r0: np.ndarray, max_r: float) -> np.ndarray:
    rel = pos - r0
    r = np.linalg.norm(rel, axis=1, keepdims=True)
    return r0 + rel * np.minimum(1.0, max_r / r)


def fixed_gain(info: mne.Info, dipoles: Dipoles, r0: np.ndarray, head_radius: float) -> np.ndarray:
    """Gain (n_meg_channels, n_dipoles) in T/Am for fixed-orientation dipoles, sphere model, mne forward."""
    meg_info = mne.pick_info(info, mne.pick_types(info, meg=True, ref_meg=False))
    return sphere_gain(meg_info, dipoles, r0, head_radius)


def sphere_gain(info: mne.Info, dipoles: Dipoles, r0: np.ndarray, head_radius: float) -> np.ndarray:
    """Gain (channels of ``info``, n_dipoles) of fixed-orientation dipoles in MNE's sphere model of centre
    ``r0`` and radius ``head_radius`` (its default shells and conductivities): T/Am for MEG channels, V/Am for
    EEG electrodes (``info`` holds one kind)."""
    sphere = mne.make_sphere_model(r0=tuple(r0), head_radius=head_radius, verbose="error")
    src = mne.setup_volume_source_space(
        pos={"rr": dipoles.pos, "nn": dipoles.ori}, sphere=sphere, verbose="error"
    )
    is_eeg = bool(len(mne.pick_types(info, meg=False, eeg=True)))
    fwd = mne.make_forward_solution(
        info, trans=None, src=src, bem=sphere, meg=not is_eeg, eeg=is_eeg, verbose="error"
    )
    if fwd["nsource"] != len(dipoles.pos):
        raise RuntimeError(f"forward kept {fwd['nsource']} of {len(dipoles.pos)} dipoles (outside sphere?)")
    gain = fwd["sol"]["data"].reshape(len(info["ch_names"]), -1, 3)  # free orientation, head frame
    return np.einsum("csk,sk->cs", gain, dipoles.ori)
