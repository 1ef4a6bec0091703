"""The sensor layout the brain module sees: a projection of the 3-D positions vs MNE's layout of the system.

``megdecode.preprocessing.assemble.sensor_layout`` (what the workflow uses) is the azimuthal equidistant
projection of the sensors' 3-D positions about a fitted sphere; ``mne_layout`` is MNE's layout of the system
(``mne.find_layout``, what brainmagick uses). Both are scaled to the unit square.
Printed, for the real CTF-275 recording beside the checkout (``../shared/ctf-sample``, skipped when
absent) and for the simulated study's CTF-275 array: per-channel distance between the two layouts
(unit-square units), the Procrustes disparity (0 = the same shape up to shift, rotation and scale), how many
of each sensor's nearest neighbours the two share, and the overlap of the radius-0.2 neighbourhoods (the
spatial attention's training-time dropout disc).

    .venv/bin/python benchmarks/sensor_layout_compare.py
"""

from __future__ import annotations

import datetime
from pathlib import Path

import mne
import numpy as np
from scipy.spatial import procrustes

from megdecode.preprocessing.assemble import mne_layout, sensor_layout
from megdecode.simulate.sensors import head_geometry, make_info

CTF_SAMPLE = (
    Path(__file__).resolve().parents[2] / "shared" / "ctf-sample" / "testdata_ctf_short_discontinuous.ds"
)


def _neighbours(xy: np.ndarray, k: int) -> np.ndarray:
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k]


def compare(name: str, info: mne.Info, channels: list[str]) -> None:
    mne_xy = mne_layout(info, channels)
    projected = sensor_layout(np.array([info["chs"][info["ch_names"].index(c)]["loc"][:3] for c in channels]))
    dist = np.linalg.norm(mne_xy - projected, axis=1)
    print(f"{name}: {len(channels)} channels, MNE layout {mne.find_layout(info).kind}")
    print(
        f"  distance per channel: mean {dist.mean():.4f}, median {np.median(dist):.4f}, max {dist.max():.4f}"
    )
    print(f"  Procrustes disparity: {procrustes(mne_xy, projected)[2]:.5f}")
    for k in (4, 8):
        shared = [
            len(set(a) & set(b)) / k
            for a, b in zip(_neighbours(mne_xy, k), _neighbours(projected, k), strict=True)
        ]
        print(f"  {k} nearest neighbours shared: {np.mean(shared):.3f}")
    near_a = np.linalg.norm(mne_xy[:, None] - mne_xy[None], axis=-1) < 0.2
    near_b = np.linalg.norm(projected[:, None] - projected[None], axis=-1) < 0.2
    jaccard = [(near_a[i] & near_b[i]).sum() / (near_a[i] | near_b[i]).sum() for i in range(len(channels))]
    print(f"  radius-0.2 neighbourhoods, mean Jaccard overlap: {np.mean(jaccard):.3f}")


def main() -> None:
    mne.set_log_level("error")
    if CTF_SAMPLE.is_dir():
        info = mne.io.read_raw_ctf(CTF_SAMPLE).info
        channels = [info["ch_names"][i] for i in mne.pick_types(info, meg=True, ref_meg=False, exclude=[])]
        compare("real CTF-275 recording", info, channels)
    else:
        print(f"real CTF-275 recording not found at {CTF_SAMPLE}: skipped")
    info = make_info(
        600.0, head_geometry(np.random.default_rng(0)), datetime.datetime(2020, 1, 6, tzinfo=datetime.UTC)
    )
    compare("simulated CTF-275 array", info, [c for c in info["ch_names"] if c.startswith("M")])


if __name__ == "__main__":
    main()
