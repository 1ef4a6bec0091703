"""Benchmark of the training stage (not a test): matmul peak, brain-module step, batch-1 latency, ridge.

Usage (from the repository root)::

    .venv/bin/python benchmarks/train_benchmark.py               # all parts
    .venv/bin/python benchmarks/train_benchmark.py --only model --blocks 2 5 10
    .venv/bin/python benchmarks/train_benchmark.py --only model --blocks 5 --output-stages conv_mlp
    .venv/bin/python benchmarks/train_benchmark.py --only ridge  # THINGS-size ridge (~4 GB temp file)

Model part: fp32 matmul FLOP/s of this machine (torch, all threads), then one training step
(forward, backward, Adam) of the brain module at the paper's width (batch 128, 271 channels x 181
samples, 270 attention channels, 320 hidden, 2048 features, a 768-d latent) with each output stage
(``linear``: aggregation then Linear 320 -> 2048; ``conv_mlp``, the paper's: 1x1 conv 320 -> 640,
GELU, 1x1 conv -> 2048 at every time step, then aggregation), its FLOPs counted by torch's
FlopCounterMode, as a fraction of that peak; samples/s; and the latency of decoding one
trial at batch 1 on one core: with the training graph, and with the frozen RealtimeDecoder (same
maths, folded front and batch norm; direct or Winograd convolutions; on the CPU also Winograd through
torch.compile, which needs a C++ compiler; and, not the same maths, the direct decoder in bfloat16).
Latencies are medians over rounds of 25 trials. Also the
StreamingDecoder (samples pushed as they arrive, in chunks of 1 and of 12 samples): the time of a
window's last push, i.e. what is left to compute after the trial's last sample. "model"
FLOPs count the direct convolution; "executed" FLOPs are what the decoder runs (Winograd: about half).
Ridge part: the ridge job's code path (binning a memory-mapped
20,000 x 271 x 181 float32 array, then fit_ridge with 9 alphas and validation selection), wall time
and peak resident memory of a fresh process.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np


def matmul_peak(sizes: tuple[int, ...] = (1024, 2048, 4096), reps: int = 5) -> float:
    """Best fp32 FLOP/s of an n x n matmul over ``sizes`` with torch's current thread count.

    The best over several sizes, not one size: a single size can sit in a slow spot of the BLAS
    blocking, and a low peak would flatter the percentages below.
    """
    import torch

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.matmul(a, b)
        best = max(best, 2 * n**3 / min(_timed(lambda a=a, b=b: torch.matmul(a, b)) for _ in range(reps)))
    return best


def _timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def model_benchmark(
    blocks: list[int], stages: list[str], batch: int, steps: int, latency_reps: int, device: str
) -> list[dict]:
    import torch

    threads = torch.get_num_threads()
    dev = torch.device(device)
    peak = matmul_peak() if device == "cpu" else _cuda_peak()
    torch.set_num_threads(1)
    peak_1 = matmul_peak((512, 1024, 2048), 3) if device == "cpu" else float("nan")
    torch.set_num_threads(threads)
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({threads} threads), {peak_1 / 1e9:.1f} (1 thread)")
    rows = []
    for n_blocks in blocks:
        for stage in stages:
            row = bench_blocks(n_blocks, stage, batch, steps, latency_reps, dev, peak, peak_1, threads)
            print(json.dumps(row))
            rows.append(row)
    return rows


def bench_blocks(n_blocks, output_stage, batch, steps, latency_reps, dev, peak, peak_1, threads) -> dict:
    """One training-step and batch-1 measurement of the paper-width brain module with ``n_blocks``
    and ``output_stage``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from megdecode.config import section_defaults
    from megdecode.models import BrainModuleConfig, RealtimeDecoder, StreamingDecoder
    from megdecode.models.losses import combined_loss
    from megdecode.training.config import TrainingConfig
    from megdecode.training.loop import build_model

    pos = np.random.default_rng(0).uniform(0, 1, (271, 2)).astype(np.float32)
    bcfg = BrainModuleConfig.from_dict(
        {**section_defaults("brain_module"), "n_blocks": n_blocks, "output_stage": output_stage}
    )
    cfg = TrainingConfig.from_dict(section_defaults("training"))
    model = build_model(bcfg, cfg, pos, 1, 181, (768,), seed=0).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 271, 181, generator=gen).to(dev)
    y = torch.randn(batch, 768, generator=gen).to(dev)
    subj = torch.zeros(batch, dtype=torch.long, device=dev)

    def step() -> None:
        out = model(x, subj, None, gen)
        loss = combined_loss(out, y, model.logit_scale, cfg)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(dev)

    model.train()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()
    t_step = statistics.median(_timed(step) for _ in range(steps))
    # batch-1 latency on one core (CPU) or on the device: the training graph, then the frozen
    # real-time decoder (front and batch norm folded) with direct and with Winograd convolutions,
    # and on the CPU the Winograd decoder through torch.compile
    model.eval()
    x1, s1 = x[:1].clone(), subj[:1]
    if dev.type == "cpu":
        torch.set_num_threads(1)
    winograd = RealtimeDecoder(model.brain, 0, winograd=True)
    calls = {
        "brain": lambda: model(x1, s1),
        "realtime_direct": partial(RealtimeDecoder(model.brain, 0, winograd=False), x1),
        "realtime_winograd": partial(winograd, x1),
    }
    if dev.type == "cpu":
        calls["realtime_compiled"] = partial(winograd.compiled(), x1)
        # not the same maths: bfloat16 direct convolutions (AMX where the CPU has it), for comparison
        bf16 = RealtimeDecoder(model.brain, 0, winograd=False).to(torch.bfloat16)
        calls["realtime_direct_bf16"] = partial(bf16, x1.bfloat16())
    executed, deviation, first_call_s = {}, {}, {}
    with torch.inference_mode():
        model(x1, s1)  # fills the spatial-attention cache: later calls are one trial's work
        with FlopCounterMode(display=False) as c1:
            reference = model(x1, s1)
        for name, call in calls.items():
            tic = time.perf_counter()
            out = call()  # the compiled decoder compiles here
            first_call_s[name] = time.perf_counter() - tic
            if name == "realtime_compiled":
                executed[name] = executed["realtime_winograd"]
            else:
                with FlopCounterMode(display=False) as counter:
                    call()
                executed[name] = counter.get_total_flops()
            deviation[name] = _rel_diff(out, reference)
            for _ in range(3):
                call()
        # rounds of 25 consecutive trials per variant (a decoder runs trial after trial, its weights
        # warm in cache), the variants taking turns so that a drift of this host's speed hits all alike
        times: dict[str, list[float]] = {name: [] for name in calls}
        for start in range(0, latency_reps, 25):
            for name, call in calls.items():
                call()
                times[name] += [
                    _timed(lambda c=call: (c(), _sync(dev))) for _ in range(min(25, latency_reps - start))
                ]
        stream = StreamingDecoder(model.brain, 0)
        tails = {chunk: streaming_tail(stream, x1[0], chunk, latency_reps // 4) for chunk in (1, 12)}
    latency = {name: statistics.median(t) for name, t in times.items()}
    torch.set_num_threads(threads)
    trial_flops = c1.get_total_flops()
    row = {
        "device": str(dev),
        "n_blocks": n_blocks,
        "output_stage": output_stage,
        "params": sum(p.numel() for p in model.parameters()),
        "step_s": round(t_step, 4),
        "step_gflop": round(flops / 1e9, 2),
        "step_gflop_per_trial": round(flops / batch / 1e9, 3),
        "achieved_gflops": round(flops / t_step / 1e9, 1),
        "pct_of_matmul_peak": round(100 * flops / t_step / peak, 1),
        "samples_per_s": round(batch / t_step, 1),
        "batch1_model_gflop": round(trial_flops / 1e9, 3),
    }
    row["batch1_compile_s"] = round(first_call_s.get("realtime_compiled", float("nan")), 1)
    for name in calls:
        row[f"batch1_{name}_ms"] = round(1e3 * latency[name], 2)
        row[f"batch1_{name}_executed_gflop"] = round(executed[name] / 1e9, 3)
        row[f"batch1_{name}_rel_diff_vs_brain"] = float(f"{deviation[name]:.2g}")
        # model FLOPs (direct convolution count) per second, as a fraction of the 1-thread peak
        row[f"batch1_{name}_pct_of_1thread_peak"] = round(100 * trial_flops / latency[name] / peak_1, 1)
    for chunk, (tail, out) in tails.items():
        row[f"streaming_chunk{chunk}_last_push_ms"] = round(1e3 * tail, 2)
        row[f"streaming_chunk{chunk}_rel_diff_vs_brain"] = float(f"{_rel_diff(out, reference):.2g}")
    return row


def _rel_diff(out: dict, reference: dict) -> float:
    """Largest relative L2 deviation of the two heads from the brain module's outputs."""
    return max(float((out[k] - reference[k]).norm() / reference[k].norm()) for k in ("clip", "mse"))


def streaming_tail(stream, trial, chunk: int, windows: int) -> tuple[float, dict]:
    """Median time of a window's last push (``chunk`` samples) into a StreamingDecoder, and its output.

    The samples before it arrive in pushes of ``chunk`` (the first one shorter when needed), as from
    an acquisition buffer: the last push is what is left to wait for after the trial's last sample.
    """
    n_times = trial.shape[1]
    bounds = [0, *range(n_times % chunk or chunk, n_times + 1, chunk)]
    last = []
    for _ in range(max(windows, 1)):
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            tic = time.perf_counter()
            out = stream.push(trial[:, a:b])
            _sync(trial.device)
        last.append(time.perf_counter() - tic)
    return statistics.median(last), out


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def _cuda_peak(n: int = 8192, reps: int = 10) -> float:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    torch.matmul(a, b)
    torch.cuda.synchronize()
    best = min(_timed(lambda: (torch.matmul(a, b), torch.cuda.synchronize())) for _ in range(reps))
    return 2 * n**3 / best


def ridge_benchmark(n: int, channels: int, times: int, dim: int, workdir: Path) -> dict:
    """Run in a fresh process so that peak RSS is the ridge job's own."""
    meg_path = workdir / "meg.npy"
    mm = np.lib.format.open_memmap(meg_path, mode="w+", dtype=np.float32, shape=(n, channels, times))
    rng = np.random.default_rng(0)
    for i in range(0, n, 1000):
        mm[i : i + 1000] = rng.standard_normal((min(1000, n - i), channels, times), dtype=np.float32)
    mm.flush()
    del mm
    code = f"""
import json, resource, time
import numpy as np
from megdecode.ridge import bin_time, fit_ridge, DEFAULT_ALPHAS
tic = time.perf_counter()
meg = np.load({str(meg_path)!r}, mmap_mode="r")
n = meg.shape[0]; n_val = n // 10
rng = np.random.default_rng(1)
perm = rng.permutation(n)
X_tr = bin_time(meg, perm[n_val:], 10); X_va = bin_time(meg, perm[:n_val], 10)
t_bin = time.perf_counter() - tic
W = rng.standard_normal((X_tr.shape[1], {dim}), dtype=np.float32) / np.sqrt(X_tr.shape[1])
Y_tr = X_tr @ W + rng.standard_normal((len(X_tr), {dim}), dtype=np.float32)
Y_va = X_va @ W + rng.standard_normal((len(X_va), {dim}), dtype=np.float32)
tic = time.perf_counter()
model = fit_ridge(X_tr, Y_tr, DEFAULT_ALPHAS, X_va, Y_va)
t_fit = time.perf_counter() - tic
print(json.dumps({{"n_train": len(X_tr), "features": X_tr.shape[1], "targets": {dim}, "alpha": model.alpha,
    "bin_s": round(t_bin, 1), "fit_s": round(t_fit, 1), "total_s": round(t_bin + t_fit, 1),
    "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["model", "ridge"], default=None)
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 5])
    parser.add_argument(
        "--output-stages", nargs="+", choices=["linear", "conv_mlp"], default=["linear", "conv_mlp"]
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--latency-reps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ridge-n", type=int, default=20000)
    parser.add_argument("--ridge-dim", type=int, default=768)
    parser.add_argument("--out", type=Path, default=None, help="write the measured rows as JSON here")
    args = parser.parse_args()
    result: dict = {}
    if args.only in (None, "model"):
        result["model"] = model_benchmark(
            args.blocks, args.output_stages, args.batch, args.steps, args.latency_reps, args.device
        )
    if args.only in (None, "ridge"):
        with tempfile.TemporaryDirectory() as tmp:
            result["ridge"] = ridge_benchmark(args.ridge_n, 271, 181, args.ridge_dim, Path(tmp))
    result["own_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
