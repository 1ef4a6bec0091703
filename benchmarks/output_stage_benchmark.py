"""Side-by-side benchmark of the brain module's output stages (``linear`` vs ``conv_mlp``), interleaved.

Usage (from the repository root)::

    .venv/bin/python benchmarks/output_stage_benchmark.py --blocks 2 5

At the paper's width (271 channels x 181 samples, 270 attention channels, 320 hidden, 2048 features,
768-d latent), for each number of blocks: the training step (batch 128, forward, backward, Adam, all
threads), the batch-1 latency of the training graph and of the frozen Winograd decoder on one core, the
streaming decoder's last push (chunks of 1 and of 12 samples) on one core, and the FLOPs of one trial
(torch's FlopCounterMode: what runs). The two stages take turns in every round, so that a drift of this
shared host's speed hits both alike (``train_benchmark.py`` measures one configuration after the other).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from train_benchmark import _timed, streaming_tail  # noqa: E402

STAGES = ("linear", "conv_mlp")


def _setup(n_blocks: int, stage: str, batch: int) -> dict:
    from megdecode.config import section_defaults
    from megdecode.models import BrainModuleConfig, RealtimeDecoder, StreamingDecoder
    from megdecode.models.losses import combined_loss
    from megdecode.training.config import TrainingConfig
    from megdecode.training.loop import build_model

    pos = np.random.default_rng(0).uniform(0, 1, (271, 2)).astype(np.float32)
    cfg = TrainingConfig.from_dict(section_defaults("training"))
    bcfg = BrainModuleConfig.from_dict(
        {**section_defaults("brain_module"), "n_blocks": n_blocks, "output_stage": stage}
    )
    model = build_model(bcfg, cfg, pos, 1, 181, (768,), seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 271, 181, generator=gen), torch.randn(batch, 768, generator=gen)
    subj = torch.zeros(batch, dtype=torch.long)

    def step() -> None:
        model.train()
        loss = combined_loss(model(x, subj, None, gen), y, model.logit_scale, cfg)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.eval()  # the batch-1 calls below run the evaluation graph

    with FlopCounterMode(display=False) as counter:
        step()
    step_flops = counter.get_total_flops()
    x1, s1 = x[:1].clone(), subj[:1]
    with torch.inference_mode():
        model(x1, s1)  # fills the spatial-attention cache
        with FlopCounterMode(display=False) as counter:
            model(x1, s1)
    return {
        "step": step,
        "step_flops": step_flops,
        "trial_flops": counter.get_total_flops(),
        "brain": lambda: model(x1, s1),
        "realtime": partial(RealtimeDecoder(model.brain, 0, winograd=True), x1),
        "stream": StreamingDecoder(model.brain, 0),
        "trial": x1[0],
        "params": sum(p.numel() for p in model.parameters()),
    }


def bench(n_blocks: int, batch: int, rounds: int, reps: int) -> list[dict]:
    threads = torch.get_num_threads()
    setups = {stage: _setup(n_blocks, stage, batch) for stage in STAGES}
    times: dict[str, dict[str, list[float]]] = {s: {} for s in STAGES}
    for _ in range(rounds):
        for stage, su in setups.items():
            torch.set_num_threads(threads)
            times[stage].setdefault("step_s", []).append(_timed(su["step"]))
            torch.set_num_threads(1)
            with torch.inference_mode():
                for name in ("brain", "realtime"):
                    su[name]()
                    times[stage].setdefault(f"batch1_{name}_ms", []).extend(
                        1e3 * _timed(su[name]) for _ in range(reps)
                    )
                for chunk in (1, 12):
                    tail, _ = streaming_tail(su["stream"], su["trial"], chunk, reps)
                    times[stage].setdefault(f"streaming_chunk{chunk}_last_push_ms", []).append(1e3 * tail)
    torch.set_num_threads(threads)
    rows = []
    for stage, su in setups.items():
        row = {"n_blocks": n_blocks, "output_stage": stage, "params": su["params"]}
        row["step_gflop_per_trial"] = round(su["step_flops"] / batch / 1e9, 3)
        row["trial_gflop"] = round(su["trial_flops"] / 1e9, 3)
        row |= {
            name: round(statistics.median(t), 3 if name == "step_s" else 2)
            for name, t in times[stage].items()
        }
        print(json.dumps(row))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="turns per stage (one training step each)")
    parser.add_argument("--reps", type=int, default=10, help="batch-1 calls and streamed windows per turn")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = [row for n in args.blocks for row in bench(n, args.batch, args.rounds, args.reps)]
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
