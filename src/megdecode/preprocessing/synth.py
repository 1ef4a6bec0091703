"""Small synthetic CTF-like recordings with known content, for tests and the benchmark.

Not the study simulator (rules/simulate.smk): just enough structure to check the preprocessing chain:
MEG channels with CTF names and 3-D positions, reference and misc channels, a slow drift, line noise,
white noise and an evoked burst after each event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CTF_SUFFIX = "-1609"


@dataclass(frozen=True)
class SynthSpec:
    """What to simulate."""

    n_meg: int = 32
    n_ref: int = 4
    n_misc: int = 2
    sfreq: float = 600.0
    duration: float = 60.0
    n_events: int = 30
    first_onset: float = 2.0
    seed: int = 0
    noise: float = 1e-13
    drift: float = 2e-12
    line: float = 5e-13
    evoked: float = 4e-13


def meg_names(n: int) -> list[str]:
    """CTF-style sensor names; ``MRO11`` is always among them (THINGS-MEG's bad channel)."""
    names = ["MRO11" + CTF_SUFFIX]
    regions = ["LC", "RC", "LF", "RF", "LO", "RO", "LP", "RP", "LT", "RT", "ZC", "ZF", "ZO", "ZP"]
    i = 0
    while len(names) < n:
        region, num = regions[i % len(regions)], 21 + i // len(regions)
        names.append(f"M{region}{num}{CTF_SUFFIX}")
        i += 1
    return names[:n]


def helmet_positions(n: int) -> np.ndarray:
    """``n`` points spread on the upper half of a 10 cm sphere (Fibonacci spiral), metres."""
    k = np.arange(n) + 0.5
    z = 1 - k / n  # (0, 1]: upper hemisphere
    r = np.sqrt(1 - z**2)
    phi = np.pi * (1 + 5**0.5) * k
    return 0.1 * np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def event_samples(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Event samples with THINGS-like onset-to-onset jitter (1.28-1.70 s), inside the recording."""
    gaps = rng.uniform(1.28, 1.70, size=spec.n_events)
    onsets = spec.first_onset + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    if onsets[-1] + 1.5 > spec.duration:
        raise ValueError(f"{spec.n_events} events do not fit in {spec.duration} s")
    return np.round(onsets * spec.sfreq).astype(np.int64)


def make_info(spec: SynthSpec):
    """MNE info: MEG (CTF axial gradiometer coils), reference MEG and misc channels, with positions."""
    import mne
    from mne.io.constants import FIFF

    names = meg_names(spec.n_meg) + [f"BG{i + 1}{CTF_SUFFIX}" for i in range(spec.n_ref)]
    misc = ["UPPT001", "UADC016-2104", "UADC009-2104", "UADC010-2104", "UADC013-2104"]
    misc += [f"UADC{20 + i:03d}-2104" for i in range(max(0, spec.n_misc - len(misc)))]
    names += misc[: spec.n_misc]
    types = ["mag"] * spec.n_meg + ["ref_meg"] * spec.n_ref + ["stim"] + ["misc"] * (spec.n_misc - 1)
    info = mne.create_info(names, spec.sfreq, types[: len(names)])
    pos = helmet_positions(spec.n_meg)
    with info._unlock():
        for i, ch in enumerate(info["chs"][: spec.n_meg]):
            normal = pos[i] / np.linalg.norm(pos[i])
            ch["loc"][:3] = pos[i]
            ch["loc"][3:12] = np.concatenate([[1, 0, 0], [0, 1, 0], normal])
            ch["coil_type"] = FIFF.FIFFV_COIL_CTF_GRAD
        for i, ch in enumerate(info["chs"][spec.n_meg : spec.n_meg + spec.n_ref]):
            ch["loc"][:3] = 0.15 * np.array([0.0, 0.0, 1.0]) + 0.01 * i
    return info


def make_raw(spec: SynthSpec, dtype=np.float64):
    """A RawArray with known components and the event samples: returns (raw, samples)."""
    import mne

    rng = np.random.default_rng(spec.seed)
    info = make_info(spec)
    n = int(round(spec.duration * spec.sfreq))
    samples = event_samples(spec, rng)
    t = np.arange(n) / spec.sfreq
    n_ch = len(info["ch_names"])
    data = np.empty((n_ch, n), dtype=dtype)
    pattern = rng.standard_normal(n_ch)
    for c in range(n_ch):
        phase = rng.uniform(0, 2 * np.pi, 2)
        data[c] = spec.noise * rng.standard_normal(n)
        data[c] += spec.drift * np.sin(2 * np.pi * 0.02 * t + phase[0])
        data[c] += spec.line * np.sin(2 * np.pi * 60.0 * t + phase[1])
    burst_t = np.arange(int(0.4 * spec.sfreq)) / spec.sfreq
    burst = spec.evoked * np.sin(2 * np.pi * 10.0 * burst_t) * np.exp(-burst_t / 0.1)
    lat = int(round(0.1 * spec.sfreq))
    for s in samples:
        data[: spec.n_meg, s + lat : s + lat + burst.size] += pattern[: spec.n_meg, None] * burst
    stim = info["ch_names"].index("UPPT001") if "UPPT001" in info["ch_names"] else None
    if stim is not None:
        data[stim] = 0
        data[stim, samples] = 1
    raw = mne.io.RawArray(data, info, verbose="error")
    return raw, samples
