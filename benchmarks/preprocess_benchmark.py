"""Benchmark: the plain MNE chain vs megdecode's preprocessing chain on one THINGS-size run.

Simulates one run (in a subprocess: 310 channels: 272 MEG + 28 references + 10 misc, 1200 Hz, 348 s, 225 image
events; megdecode.preprocessing.synth), saves it as FIF, then runs each chain in its own subprocess so that
wall time, CPU time and peak resident memory (VmHWM, imports included) are measured honestly:

(a) plain MNE: read_raw_fif -> pick the 271 MEG channels -> load -> filter(0.1, 40) -> Epochs(-0.5, 1.0,
    baseline=(None, 0)) -> resample(120). For agreement it also decimates the same epochs by 10 (not timed):
    resample() is FFT-based and shifts timing (DESIGN.md "timing trap"), so the exact reference is decimation.
(b) megdecode: megdecode.preprocessing.signal.epoch_continuous, as the workflow's run job calls it.

Agreement tolerance: relative RMS difference < 1e-3 between (b) and (a, decimated). The chains are the same
linear operator up to (1) the slow drift of the high-pass being computed on the 120 Hz stream and linearly
interpolated, (2) float32 arithmetic, (3) the edge padding of the first/last seconds.

Usage: .venv/bin/python benchmarks/preprocess_benchmark.py [--workdir DIR] [--duration 348]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOLERANCE = 1e-3


def simulate(workdir: Path, duration: float, n_events: int) -> tuple[Path, Path]:
    from megdecode.preprocessing.synth import SynthSpec, make_raw

    spec = SynthSpec(n_meg=272, n_ref=28, n_misc=10, sfreq=1200.0, duration=duration, n_events=n_events)
    raw, samples = make_raw(spec, dtype=np.float64)
    raw_path, events_path = workdir / "bench_meg.fif", workdir / "bench_samples.npy"
    raw.save(raw_path, overwrite=True, verbose="error")
    np.save(events_path, samples, allow_pickle=False)
    return raw_path, events_path


def chain_mne(raw_path: Path, samples: np.ndarray, out: Path) -> float:
    import mne

    t0 = time.perf_counter()
    raw = mne.io.read_raw_fif(raw_path, preload=False, verbose="error")
    meg = [
        n
        for n in np.array(raw.ch_names)[mne.pick_types(raw.info, meg=True, ref_meg=False)]
        if n != "MRO11-1609"
    ]
    raw.pick(meg).load_data(verbose="error")
    raw.filter(0.1, 40.0, verbose="error")
    events = np.column_stack([samples, np.zeros_like(samples), np.ones_like(samples)])
    epochs = mne.Epochs(raw, events, tmin=-0.5, tmax=1.0, baseline=(None, 0), preload=True, verbose="error")
    resampled = epochs.copy().resample(120.0, verbose="error").get_data()
    elapsed = time.perf_counter() - t0
    np.save(out / "mne_resample.npy", resampled.astype(np.float32), allow_pickle=False)
    np.save(out / "mne_decimate.npy", epochs.decimate(10).get_data().astype(np.float32), allow_pickle=False)
    return elapsed


def chain_ours(raw_path: Path, samples: np.ndarray, out: Path) -> float:
    from megdecode.config import section_defaults
    from megdecode.preprocessing.params import PreprocessingParams
    from megdecode.preprocessing.reader import open_raw, pick_meg_channels
    from megdecode.preprocessing.run import block_reader
    from megdecode.preprocessing.signal import epoch_continuous

    t0 = time.perf_counter()
    params = PreprocessingParams.from_config(section_defaults("preprocessing"))
    raw = open_raw(raw_path, "bench")
    pick = pick_meg_channels(raw.info, params.bad_channels, "bench")
    read, rows = block_reader(raw, pick.picks)
    n_read = int(rows.max()) + 1
    result = epoch_continuous(
        read, raw.n_times, n_read, raw.info["sfreq"], samples, params, "bench", rows=rows
    )
    elapsed = time.perf_counter() - t0
    np.save(out / "ours.npy", result.data, allow_pickle=False)
    return elapsed


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: not inherited from the parent, unlike ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(chain: str, raw_path: Path, events_path: Path, out: Path, duration: float, n_events: int) -> None:
    """Simulate, or run one chain; print wall time, CPU time and peak RSS as JSON."""
    if chain == "simulate":
        t0 = time.perf_counter()
        simulate(out, duration, n_events)
        print(json.dumps({"chain": chain, "wall_s": time.perf_counter() - t0}))
        return
    import mne  # noqa: F401 - imports before the baseline RSS reading

    import megdecode.preprocessing.signal  # noqa: F401

    base = peak_rss_mb()
    samples = np.load(events_path, allow_pickle=False)
    cpu0 = time.process_time()
    wall = (chain_mne if chain == "mne" else chain_ours)(raw_path, samples, out)
    cpu = time.process_time() - cpu0
    result = {"chain": chain, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb()}
    print(json.dumps({**result, "rss_after_imports_mb": base}))


def run_child(
    chain: str, raw_path: Path, events_path: Path, out: Path, duration: float, n_events: int
) -> dict:
    cmd = [sys.executable, __file__, "--child", chain, "--raw", str(raw_path), "--events", str(events_path)]
    cmd += ["--workdir", str(out), "--duration", str(duration), "--n-events", str(n_events)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--duration", type=float, default=348.0)
    parser.add_argument("--n-events", type=int, default=225)
    parser.add_argument("--child", choices=["simulate", "mne", "ours"], default=None)
    parser.add_argument("--raw", type=Path)
    parser.add_argument("--events", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.raw, args.events, args.workdir, args.duration, args.n_events)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        raw_path, events_path = work / "bench_meg.fif", work / "bench_samples.npy"
        sim = run_child("simulate", raw_path, events_path, work, args.duration, args.n_events)
        print(f"simulated {args.duration:.0f} s run (310 channels, 1200 Hz) in {sim['wall_s']:.1f} s")
        load = os.getloadavg()
        results = {
            c: run_child(c, raw_path, events_path, work, args.duration, args.n_events)
            for c in ("mne", "ours")
        }
        ours = np.load(work / "ours.npy")
        ref = np.load(work / "mne_decimate.npy").astype(np.float64)
        resampled = np.load(work / "mne_resample.npy")
        rel_rms = float(np.sqrt(((ours - ref) ** 2).mean() / (ref**2).mean()))
        max_rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
    speedup = results["mne"]["wall_s"] / results["ours"]["wall_s"]
    summary = {
        "load_average_1_5_15": [round(x, 2) for x in load],
        "cpu_count": os.cpu_count(),
        "mne": results["mne"],
        "ours": results["ours"],
        "speedup": speedup,
        "speedup_cpu": results["mne"]["cpu_s"] / results["ours"]["cpu_s"],
        "agreement_rel_rms": rel_rms,
        "agreement_max_rel": max_rel,
        "tolerance_rel_rms": TOLERANCE,
        "shapes": {"ours": list(ours.shape), "mne_resample": list(resampled.shape)},
        "extrapolated_480_runs_8_cores_min": 480 / 8 * results["ours"]["wall_s"] / 60,
        "extrapolated_480_runs_8_cores_min_mne": 480 / 8 * results["mne"]["wall_s"] / 60,
    }
    print(json.dumps(summary, indent=2))
    ok = rel_rms < TOLERANCE
    print(
        f"plain MNE {results['mne']['wall_s']:.1f} s (CPU {results['mne']['cpu_s']:.1f} s) / "
        f"{results['mne']['peak_rss_mb']:.0f} MB peak; ours {results['ours']['wall_s']:.1f} s "
        f"(CPU {results['ours']['cpu_s']:.1f} s) / {results['ours']['peak_rss_mb']:.0f} MB peak; "
        f"speed-up {speedup:.1f}x; agreement rel. RMS {rel_rms:.1e} ({'OK' if ok else 'FAIL'} < {TOLERANCE})"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
