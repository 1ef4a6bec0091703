"""Calibration of the simulated 7T study (fmri.simulation) to NSD by ideal observers only; no decoder runs.

Renders the embedded default's stimulus set (config.yaml: seed, simulation.stimuli) into ``--out``, draws
the 4 subjects' worlds with the schema defaults of ``fmri.simulation`` and, for each latent size of
``--sizes`` (early units / feature dimensions), bisects ``neural_noise`` until the ideal observer's 300-way
top-1 identification of 3-trial averages of training-concept images (MindEye's protocol on the simulator's
images) equals MindEye's mean over NSD subjects 1, 2, 5, 7 (megdecode.simulate.fmri_calibration). It then
prints each world's per-voxel ncsnr against NSD's, and the ideal observers' single-trial d'. The rule
that picked the defaults (docs/fmri.md, "Calibration"): the largest latent size whose calibrated world keeps
the median ncsnr within 2% of NSD's. Takes about 10 CPU minutes with the default sizes.

Usage: .venv/bin/python benchmarks/fmri_calibration.py [--out DIR] [--draws 5] [--sizes 32/16 64/32 128/64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from megdecode.artifacts.stimuli import read_stimuli
    from megdecode.config import load_config, section_defaults
    from megdecode.simulate import simulate_stimuli
    from megdecode.simulate.fmri import FmriSimParams, code_images, images_voxel_code, subject_key
    from megdecode.simulate.fmri_calibration import (
        ANCHOR_TOP1,
        NSD_NCSNR_MEAN_OVER_MEDIAN,
        NSD_NCSNR_MEDIAN,
        anchor_pool,
        calibrate_neural_noise,
        world_summary,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the rendered stimuli (default: temp)"
    )
    parser.add_argument("--draws", type=int, default=5, help="300-image galleries per subject and step")
    parser.add_argument("--steps", type=int, default=7, help="bisection steps on neural_noise")
    parser.add_argument("--sizes", nargs="+", default=["32/16", "64/32", "128/64"])
    args = parser.parse_args()

    config = load_config(Path(__file__).resolve().parents[1] / "config.yaml")
    seed, subjects = int(config["seed"]), list(config["study"]["subjects"])
    out = args.out or Path(tempfile.mkdtemp(prefix="fmri-calibration-"))
    if not (out / "stimuli.tsv").is_file():
        stim = {
            k: v for k, v in config["simulation"].items() if k in ("stimuli", "responses", "trigger_codes")
        }
        simulate_stimuli(out / "stimuli.tsv", out / "images", out / "truth.json", stim, seed)
    table = read_stimuli(out / "stimuli.tsv")
    pool = anchor_pool(table)
    test_ids = np.sort(table.loc[table["role"] == "test", "image_id"].to_numpy(str))
    defaults = section_defaults("fmri", "simulation")
    print(f"anchor: MindEye top-1 among 300 (3-trial averages) = {ANCHOR_TOP1:.4f}; pool {len(pool)} images")
    print(f"NSD ncsnr median {NSD_NCSNR_MEDIAN:.3f}, mean / median {NSD_NCSNR_MEAN_OVER_MEDIAN:.3f}")
    results = []
    for size in args.sizes:
        units, features = (int(v) for v in size.split("/"))
        p = FmriSimParams.from_dict({**defaults, "n_early_units": units, "n_features": features})
        tic = time.perf_counter()
        codes = {
            s: images_voxel_code(table, code_images(table), out / "images", p, subject_key(seed, s))
            for s in subjects
        }
        value, history = calibrate_neural_noise(codes, pool, args.draws, seed, steps=args.steps)
        print(f"\n{size}: neural_noise {value} ({time.perf_counter() - tic:.0f} s)")
        print(history.round(4).to_string(index=False))
        summaries = pd.DataFrame(
            [world_summary(c.with_neural_noise(value), pool, test_ids) for c in codes.values()],
            index=subjects,
        )
        print(summaries.round(3).to_string())
        results.append(
            {"size": size, "neural_noise": value, **summaries.mean(numeric_only=True).round(4).to_dict()}
        )
    print("\n" + json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
