# Stage: evaluate (see docs/ARCHITECTURE.md).
# Retrieval of every (model, backbone, subject) and time-resolved ridge decoding per subject; jobs are
# merged where python start-up would dominate, output paths keep the per-wildcard scheme.
# Which jobs exist is decided by megdecode.evaluation_plan (unit-tested).
# The brain module is trained again per listed window (evaluation.timeresolved.brain_windows) with
# TRAIN's code on cropped epochs; evaluate_timeresolved scores it beside the ridge windows.
import re

from megdecode import evaluation_plan as eplan
from megdecode.evaluation import brain_windows

EVAL_CFG = config["evaluation"]
EVAL_TIMERESOLVED = f"{EVALUATION}/timeresolved/{{backbone}}/sub-{{subject}}.tsv"
EVAL_PATTERNS = {
    "brain": f"{MODELS}/brain/{{backbone}}/sub-{{subject}}/seed-{{seed}}/predictions.npz",
    "brain_shared": f"{MODELS}/brain_shared/{{backbone}}/seed-{{seed}}/predictions_sub-{{subject}}.npz",
    "ridge": f"{MODELS}/ridge/{{backbone}}/sub-{{subject}}/predictions.npz",
    "retrieval": f"{EVALUATION}/retrieval/{{model}}/{{backbone}}/sub-{{subject}}.tsv",
    "latents": LATENTS,
}
EVAL_BACKBONES = eplan.evaluated_backbones(config)
EVAL_TR_BACKBONES = eplan.timeresolved_backbones(config)
EVAL_JOBS = eplan.retrieval_jobs(config, SUBJECTS, EVAL_PATTERNS)
EVAL_RETRIEVAL_FILES = eplan.job_outputs(EVAL_JOBS)
EVAL_TIMERESOLVED_FILES = expand(
    EVAL_TIMERESOLVED, backbone=EVAL_TR_BACKBONES, subject=SUBJECTS
)
BRAIN_WINDOWS = {
    w.name: [w.tmin, w.tmax] for w in brain_windows(EVAL_CFG["timeresolved"])
}
BRAIN_WINDOW_DIR = f"{MODELS}/brain_window/{{backbone}}/sub-{{subject}}/{{window}}"
BRAIN_WINDOW_PREDICTIONS = f"{BRAIN_WINDOW_DIR}/predictions.npz"


# The brain module on the epoch cropped to one listed window, per (backbone, subject, window).
rule train_brain_window:
    input:
        unpack(
            lambda wc: training_inputs(
                PREPROCESSED, LATENTS, [wc.subject], wc.backbone
            )
        ),
    output:
        model=f"{BRAIN_WINDOW_DIR}/model.safetensors",
        history=f"{BRAIN_WINDOW_DIR}/history.tsv",
        predictions=BRAIN_WINDOW_PREDICTIONS,
    log:
        f"{LOGS}/train_brain_window/{{backbone}}/sub-{{subject}}_{{window}}.log",
    benchmark:
        f"{BENCHMARKS}/train_brain_window/{{backbone}}/sub-{{subject}}_{{window}}.tsv"
    wildcard_constraints:
        window="|".join(map(re.escape, BRAIN_WINDOWS)) or "no-brain-window",
    conda:
        CONDA_ENV
    threads: TRAIN_CFG["threads"]
    resources:
        mem_mb=lambda wc, input: job_mem_mb(input.size_mb),
        runtime=TRAIN_CFG["runtime"],
        gpu=TRAIN_CFG["gpu"],
    params:
        brain=config["brain_module"],
        training=TRAIN_PARAMS,
        master_seed=config["seed"],
        subjects=lambda wc: [wc.subject],
        seed_parts=lambda wc: ["window", wc.window, wc.backbone, wc.subject],
        crop=lambda wc: BRAIN_WINDOWS[wc.window],
        checkpoint=lambda wc: f"{R}/checkpoints/brain_window/{wc.backbone}/sub-{wc.subject}/{wc.window}/last.pt",
    script:
        "../workflow/scripts/train_brain.py"


# One job for all (model, backbone, subject): each is sub-second, python start-up would dominate.
rule evaluate_retrieval:
    input:
        latents=expand(f"{LATENTS}/latents.npy", backbone=EVAL_BACKBONES),
        index=expand(f"{LATENTS}/index.tsv", backbone=EVAL_BACKBONES),
        meta=expand(f"{LATENTS}/latents.json", backbone=EVAL_BACKBONES),
        predictions=eplan.job_inputs(EVAL_JOBS),
    output:
        EVAL_RETRIEVAL_FILES,
    log:
        f"{LOGS}/evaluate_retrieval/evaluate_retrieval.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_retrieval/evaluate_retrieval.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        jobs=EVAL_JOBS,
        cfg={k: v for k, v in EVAL_CFG.items() if k != "timeresolved"},
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_retrieval.py"


# One job per subject for every backbone: the MEG array is read once.
rule evaluate_timeresolved:
    input:
        meg=f"{PREPROCESSED}/meg.npy",
        trials=f"{PREPROCESSED}/trials.tsv",
        info=f"{PREPROCESSED}/info.json",
        latents=expand(f"{LATENTS}/latents.npy", backbone=EVAL_TR_BACKBONES),
        index=expand(f"{LATENTS}/index.tsv", backbone=EVAL_TR_BACKBONES),
        brain_windows=lambda wc: [
            f
            for per in eplan.brain_window_files(
                config, wc.subject, BRAIN_WINDOW_PREDICTIONS, list(BRAIN_WINDOWS)
            ).values()
            for f in per.values()
        ],
    output:
        expand(
            EVAL_TIMERESOLVED.replace("{subject}", "{{subject}}"),
            backbone=EVAL_TR_BACKBONES,
        ),
    log:
        f"{LOGS}/evaluate_timeresolved/sub-{{subject}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_timeresolved/sub-{{subject}}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        latent_dirs={b: LATENTS.format(backbone=b) for b in EVAL_TR_BACKBONES},
        outputs=lambda wc: {
            b: EVAL_TIMERESOLVED.format(backbone=b, subject=wc.subject)
            for b in EVAL_TR_BACKBONES
        },
        brain_window_files=lambda wc: eplan.brain_window_files(
            config, wc.subject, BRAIN_WINDOW_PREDICTIONS, list(BRAIN_WINDOWS)
        ),
        cfg={k: EVAL_CFG[k] for k in ("topk", "ci_level", "timeresolved")},
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_timeresolved.py"


ALL_TARGETS += EVAL_RETRIEVAL_FILES + EVAL_TIMERESOLVED_FILES
