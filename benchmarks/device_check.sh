#!/usr/bin/env bash
# Device-machine check of the real-time and streaming decoders (not run by CI): equivalence on CUDA, then the model
# benchmark on the machine's CPU (2 threads, as on the 2-core development machine) and on the GPU.
# Usage on a machine with torch: OUT=out bash benchmarks/device_check.sh
set -uo pipefail
export PYTHONPATH=src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "${OUT:=out}"
python3 -m pytest -q -p no:cacheprovider tests/test_realtime.py -k "not reproduces" 2>&1 | tail -2
python3 - <<'PY'
import torch
from megdecode.models import BrainModule, BrainModuleConfig, RealtimeDecoder, StreamingDecoder
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.manual_seed(0)
from megdecode.config import section_defaults
brain = BrainModule(BrainModuleConfig.from_dict({**section_defaults("brain_module"), "n_blocks": 5}), torch.rand(271, 2), 2, 181, (768,)).cuda().eval()
x = torch.randn(8, 271, 181, device="cuda")
mask = torch.rand(271, device="cuda") > 0.1
with torch.inference_mode():
    ref = brain(x, torch.ones(8, dtype=torch.long, device="cuda"), mask)
    out = RealtimeDecoder(brain, 1, mask)(x)
    stream = StreamingDecoder(brain, 1, mask)
    streamed = [stream.push(part) for part in x[0].split(12, dim=-1)][-1]
print("cuda realtime vs brain, max rel diff:",
      max(float((out[k] - ref[k]).norm() / ref[k].norm()) for k in ref))
print("cuda streaming vs brain (trial 0), max rel diff:",
      max(float((streamed[k] - ref[k][:1]).norm() / ref[k][:1].norm()) for k in ref))
PY
OMP_NUM_THREADS=2 python3 benchmarks/train_benchmark.py --only model --blocks 2 5 --latency-reps 100 --out "$OUT/cpu.json"
python3 benchmarks/train_benchmark.py --only model --blocks 2 5 --device cuda --latency-reps 100 --out "$OUT/cuda.json"
