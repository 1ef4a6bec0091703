"""Benchmark: online decoding latency and replay throughput at the paper's width, on one CPU core.

A random brain module at the paper's width (5 blocks, 270 attention channels, hidden 320, 2048 features,
768-d latent; BatchNorm statistics randomised), 271 MEG channels + a trigger channel at 1200 Hz, a
gallery of 2,400 random latents, and a synthetic recording (noise + drift + DC offset, one image every
1.5 s on average, with triggers). The recording is fed to :class:`megdecode.online.OnlineDecoder`
(preprocessing.phase: causal, schema defaults) in chunks of ``--chunk`` samples as fast as possible,
pinned to one core with one torch thread.

Reported: the core's fp32 matmul peak (one thread, best of 512-2048 squared, train_benchmark.matmul_peak),
the FLOPs of the work left after a trial's last sample (the tail: last push, readout, CLIP head, top-5)
and the share of that peak it reaches (its FLOPs over the median latency, and over the median CPU time of
the feed call that completes a trial), so that hosts can be compared; the load average before and after.
Latency from the arrival of the chunk holding a trial's last needed sample to its top-5 over
the 2,400 images (p50, p95, p99, max); the causal front end's share (filtering that chunk); throughput
(stream seconds / seconds spent in ``feed``). On a host shared with other jobs, wall times include the
time the process waits for the core; ``cpu_ms_of_completing_feed`` (the thread's CPU time in the
``feed`` call that completed a trial: its front end, last push and top-5) and
``throughput_cpu_x_realtime`` (from the thread's CPU time in ``feed``) leave that out (caches are
still shared). Not a test: numbers depend on the host and its load.

Usage: .venv/bin/python benchmarks/online_benchmark.py [--seconds 120] [--chunk 12] [--blocks 5]
       [--device cpu|cuda]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def build(args):
    import torch

    from megdecode.config import section_defaults
    from megdecode.models import BrainModule, BrainModuleConfig
    from megdecode.online import Gallery, OnlineDecoder, OnlineSettings, SubjectModel
    from megdecode.preprocessing.params import PreprocessingParams

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    cfg = BrainModuleConfig.from_dict({**section_defaults("brain_module"), "n_blocks": args.blocks})
    n_meg, sfreq = 271, 1200.0
    params = PreprocessingParams.from_config(
        {**section_defaults("preprocessing"), "phase": "causal", "raw_sfreq": sfreq}
    )
    brain = BrainModule(cfg, torch.rand(n_meg, 2, generator=gen), 1, params.n_times(), (768,))
    for module in brain.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
    brain.eval()
    meg = [f"M{i:03d}-1609" for i in range(n_meg)]
    rng = np.random.default_rng(2)
    gallery = Gallery([f"img{i:04d}" for i in range(2400)], rng.standard_normal((2400, 768)))
    model = SubjectModel(brain, 0, params, meg, np.zeros(n_meg), np.full(n_meg, 3e-13))
    settings = OnlineSettings(
        stim_channel="UPPT001", trigger_codes={"exp": 1}, push_lead=args.push_lead,
        push_every=args.push_every, streaming=not args.whole,
    )  # fmt: skip
    decoder = OnlineDecoder(model, gallery, sfreq, [*meg, "UPPT001"], settings)
    n = int(args.seconds * sfreq)
    x = np.empty((n_meg + 1, n))
    x[:n_meg] = 2e-13 * rng.standard_normal((n_meg, n)) + 5e-11
    onsets = np.cumsum(rng.uniform(1.3, 1.7, int(args.seconds / 1.3)) * sfreq).astype(int)
    onsets = onsets[onsets + int(1.05 * sfreq) < n]
    x[n_meg] = 0
    for s in onsets:
        x[n_meg, s : s + 6] = 1
    return decoder, x, onsets, sfreq


def like(decoder, settings=None, **options):
    """A fresh decoder with ``decoder``'s brain module, channels, gallery and ``settings`` (default: its
    settings), with a unit scaler."""
    from megdecode.online import OnlineDecoder, SubjectModel

    n_meg = len(decoder.model_channels)
    model = SubjectModel(
        decoder.brain, 0, decoder.params, decoder.model_channels, np.zeros(n_meg), np.ones(n_meg)
    )
    channels = [*decoder.model_channels, "UPPT001"]
    return OnlineDecoder(
        model, decoder.gallery, decoder.raw_sfreq, channels, settings or decoder.settings, **options
    )


def tail_flops(decoder, x: np.ndarray, chunk: int) -> float:
    """FLOPs of the work after a trial's last sample: the ``feed`` call that completes the first trial of
    a fresh decoder like ``decoder`` (torch's FlopCounterMode: last push, readout, CLIP head), plus the
    top-5's product with the gallery (numpy: 2 x gallery x latent dim)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def addmm_inplace(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]  # torch's counter has no entry for addmm_

    fresh = like(decoder)
    for a in range(0, x.shape[1], chunk):
        with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: addmm_inplace}) as counter:
            done = fresh.feed(x[:, a : a + chunk], first_sample=a)
        if done:
            return float(counter.get_total_flops()) + 2.0 * decoder.gallery.unit.size
    raise RuntimeError("no trial completed in the stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--chunk", type=int, default=12)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--push-lead", type=int, default=6, help="OnlineDecoder push_lead")
    parser.add_argument("--push-every", type=int, default=0, help="OnlineDecoder push_every")
    parser.add_argument("--whole", action="store_true", help="streaming=False: RealtimeDecoder per window")
    parser.add_argument(
        "--core", type=int, default=None, help="CPU core to pin to (default: the first allowed)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    core = args.core if args.core is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    import torch
    from train_benchmark import matmul_peak

    torch.set_num_threads(1)
    peak = matmul_peak((512, 1024, 2048), 3)  # fp32, one thread, on the pinned core
    decoder, x, onsets, sfreq = build(args)
    feed_s = feed_cpu_s = 0.0
    completing_cpu = []  # thread CPU time of each feed() call that completed a trial
    for a in range(0, x.shape[1], args.chunk):
        tic, cpu = time.perf_counter(), time.thread_time()
        done = decoder.feed(x[:, a : a + args.chunk], first_sample=a)
        feed_s += time.perf_counter() - tic
        feed_cpu_s += time.thread_time() - cpu
        if done:
            completing_cpu.append(time.thread_time() - cpu)
    decoder.close()
    # the same stream with no trial: the causal front end alone
    front_only = like(decoder, events=[], settings=decoder.settings.replace(stim_channel=None))
    tic = time.perf_counter()
    for a in range(0, x.shape[1], args.chunk):
        front_only.feed(x[:, a : a + args.chunk], first_sample=a)
    front_s = time.perf_counter() - tic
    trials = decoder.decoded
    tail = tail_flops(decoder, x, args.chunk)
    lat = np.array([1e3 * t.latency_s for t in trials])
    front = np.array([1e3 * (t.t_filtered - t.t_last_sample_arrived) for t in trials])
    result = {
        "blocks": args.blocks,
        "chunk_samples": args.chunk,
        "push_lead": args.push_lead,
        "push_every": args.push_every,
        "streaming": not args.whole,
        "stream_s": x.shape[1] / sfreq,
        "trials": len(trials),
        "expected_trials": len(onsets),
        "skipped": dict(decoder.skip_counts),
        "gallery": len(decoder.gallery),
        "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)}
        | {"max": round(float(lat.max()), 2)},
        "front_end_ms_of_latency": {f"p{q}": round(float(np.percentile(front, q)), 3) for q in (50, 99)},
        "front_end_share_p50": round(float(np.median(front / lat)), 3),
        "cpu_ms_of_completing_feed": {
            f"p{q}": round(1e3 * float(np.percentile(completing_cpu, q)), 2) for q in (50, 95, 99)
        },
        "fp32_matmul_peak_gflops": round(peak / 1e9, 1),
        "tail_gflop": round(tail / 1e9, 4),
        # the share of that peak the work after the last sample reaches: its FLOPs / its time
        "tail_share_of_peak_p50": round(tail / (1e-3 * float(np.median(lat))) / peak, 3),
        "tail_share_of_peak_cpu_p50": round(tail / float(np.median(completing_cpu)) / peak, 3),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "feed_s": round(feed_s, 2),
        "feed_cpu_s": round(feed_cpu_s, 2),
        "throughput_x_realtime": round(x.shape[1] / sfreq / feed_s, 1),
        "throughput_cpu_x_realtime": round(x.shape[1] / sfreq / feed_cpu_s, 1),
        "front_end_only_x_realtime": round(x.shape[1] / sfreq / front_s, 1),
        "core": core,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
