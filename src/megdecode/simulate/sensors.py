"""CTF-275 sensor array of THINGS-MEG: channel names, plausible helmet positions, measurement info.

Positions are derived from what mne ships: the CTF-275 2-D layout gives each sensor's azimuth and polar angle
(the layout is an azimuthal projection), the CTF-275 helmet surface gives the radius at that direction.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from pathlib import Path

import mne
import numpy as np
from mne.io.constants import FIFF

#: THINGS-MEG's system lacks these three sensors of the 275-channel layout.
MISSING_SENSORS = ("MLF25", "MRF43", "MRO13")
SERIAL = "1609"
TRIGGER_CHANNEL = "UPPT001"
PHOTODIODE_CHANNEL = "UADC016-2104"
REFERENCE_CHANNELS = ("BG1-1609", "BG2-1609", "BG3-1609")
#: Layout radius (layout units) that maps to 105 degrees from the vertex.
_DEG_PER_LAYOUT_UNIT = 105.0 / 0.47
_SENSOR_OFFSET_M = 0.02  # first coil sits this far outside the helmet's inner surface


def ctf_sensor_names() -> list[str]:
    """The 272 axial-gradiometer names of THINGS-MEG (``MLC11-1609`` ...), sorted."""
    layout = mne.channels.read_layout("CTF275")
    return sorted(f"{n}-{SERIAL}" for n in layout.names if n not in MISSING_SENSORS)


def _helmet() -> tuple[np.ndarray, np.ndarray]:
    path = Path(mne.__file__).parent / "data" / "helmets" / "CTF_275.fif.gz"
    surf = mne.read_bem_surfaces(path, verbose="error")[0]
    return surf["rr"], surf["nn"]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@lru_cache(maxsize=1)
def sensor_geometry() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Names, positions (n, 3) and outward unit normals (n, 3) in the device frame (metres)."""
    layout = mne.channels.read_layout("CTF275")
    centres = layout.pos[:, :2] + layout.pos[:, 2:] / 2
    vertex = centres[layout.names.index("MZC01")]
    offset = centres - vertex
    theta = np.radians(np.linalg.norm(offset, axis=1) * _DEG_PER_LAYOUT_UNIT)
    phi = np.arctan2(offset[:, 1], offset[:, 0])
    dirs = np.c_[np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]
    rr, _ = _helmet()
    radius = np.linalg.norm(rr, axis=1)
    hdir = rr / radius[:, None]
    dome = np.degrees(np.arccos(np.clip(hdir[:, 2], -1, 1))) < 100  # the rim flares out below
    cos = dirs @ hdir[dome].T
    nearest = np.argsort(-cos, axis=1)[:, :4]
    weights = np.take_along_axis(cos, nearest, axis=1) ** 8
    r_at = (radius[dome][nearest] * weights).sum(1) / weights.sum(1)
    pos = dirs * (r_at + _SENSOR_OFFSET_M)[:, None]
    keep = [i for i, n in enumerate(layout.names) if n not in MISSING_SENSORS]
    names = [f"{layout.names[i]}-{SERIAL}" for i in keep]
    order = np.argsort(names)
    idx = np.asarray(keep)[order]
    return tuple(np.asarray(names)[order].tolist()), pos[idx], dirs[idx]


def _orientation_matrix(ez: np.ndarray) -> np.ndarray:
    """ex, ey, ez (3 x 3, rows) with ez the coil normal."""
    helper = np.array([1.0, 0, 0]) if abs(ez[0]) < 0.9 else np.array([0, 1.0, 0])
    ex = _unit(np.cross(helper, ez))
    ey = np.cross(ez, ex)
    return np.stack([ex, ey, ez])


def head_geometry(rng: np.random.Generator) -> dict:
    """Subject-specific head: fiducials (head frame), sphere model and device-to-head transform."""
    half_width = 0.075 + rng.normal(0, 0.003)
    nasion_y = 0.100 + rng.normal(0, 0.004)
    angles = rng.normal(0, np.radians(3), 3)
    translation = np.array([0.0, 0.01, 0.045]) + rng.normal(0, 0.003, 3)
    rot = mne.transforms.rotation(*angles)[:3, :3]
    dev_head = np.eye(4)
    dev_head[:3, :3] = rot
    dev_head[:3, 3] = translation
    return {
        "nasion": [0.0, float(nasion_y), 0.0],
        "lpa": [float(-half_width), 0.0, 0.0],
        "rpa": [float(half_width), 0.0, 0.0],
        "sphere_r0": [0.0, 0.0, float(0.04 + rng.normal(0, 0.002))],
        "head_radius": float(0.088 + rng.normal(0, 0.002)),
        "dev_head_t": dev_head.round(8).tolist(),
    }


def make_info(sfreq: float, head: dict, meas_date: datetime.datetime) -> mne.Info:
    """Measurement info: reference magnetometers, 272 CTF axial gradiometers, photodiode and trigger."""
    names, pos, normals = sensor_geometry()
    ch_names = [*REFERENCE_CHANNELS, *names, PHOTODIODE_CHANNEL, TRIGGER_CHANNEL]
    types = ["ref_meg"] * len(REFERENCE_CHANNELS) + ["mag"] * len(names) + ["misc", "stim"]
    info = mne.create_info(ch_names, sfreq, types, verbose="error")
    ref_pos = np.array([[0.0, 0.02, 0.20], [0.03, -0.02, 0.21], [-0.03, -0.02, 0.22]])
    ref_dirs = np.eye(3)
    with info._unlock():
        for ch in info["chs"]:
            name = ch["ch_name"]
            if name in REFERENCE_CHANNELS:
                k = REFERENCE_CHANNELS.index(name)
                ch["coil_type"] = FIFF.FIFFV_COIL_CTF_REF_MAG
                ch["loc"][:3] = ref_pos[k]
                ch["loc"][3:12] = _orientation_matrix(ref_dirs[k]).ravel()
            elif ch["kind"] == FIFF.FIFFV_MEG_CH:
                k = names.index(name)
                ch["coil_type"] = FIFF.FIFFV_COIL_CTF_GRAD
                ch["loc"][:3] = pos[k]
                ch["loc"][3:12] = _orientation_matrix(normals[k]).ravel()
            if ch["kind"] in (FIFF.FIFFV_MEG_CH, FIFF.FIFFV_REF_MEG_CH):
                ch["coord_frame"] = FIFF.FIFFV_COORD_DEVICE
        info["dev_head_t"] = mne.transforms.Transform("meg", "head", np.asarray(head["dev_head_t"]))
        info["line_freq"] = 60.0
        info["description"] = "megdecode simulated THINGS-like MEG (CTF-275 geometry)"
    montage = mne.channels.make_dig_montage(
        nasion=head["nasion"], lpa=head["lpa"], rpa=head["rpa"], coord_frame="head"
    )
    with info._unlock():
        info["dig"] = montage.dig
    info.set_meas_date(meas_date)
    return info
