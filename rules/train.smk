# Stage: train (see docs/ARCHITECTURE.md).
# Brain module per (backbone, subject, seed); optionally one model shared by all subjects per
# (backbone, seed); ridge baseline per (backbone, subject). Checkpoints live outside the declared
# outputs ({R}/checkpoints/...) so a killed job resumes where it stopped.
from megdecode.training_workflow import chosen_backbones, job_mem_mb, training_inputs

TRAIN_CFG = config["training"]
RIDGE_CFG = config["ridge"]
# keys that choose which jobs exist; they are not passed to jobs (editing them reruns nothing)
TRAIN_JOB_KEYS = ("backbones", "seeds", "shared_model", "threads", "runtime", "gpu")
TRAIN_PARAMS = {k: v for k, v in TRAIN_CFG.items() if k not in TRAIN_JOB_KEYS}
RIDGE_PARAMS = {k: v for k, v in RIDGE_CFG.items() if k not in ("backbones", "threads")}
BRAIN_DIR = f"{MODELS}/brain/{{backbone}}/sub-{{subject}}/seed-{{seed}}"
SHARED_DIR = f"{MODELS}/brain_shared/{{backbone}}/seed-{{seed}}"
RIDGE_DIR = f"{MODELS}/ridge/{{backbone}}/sub-{{subject}}"


BRAIN_BACKBONES = chosen_backbones(
    config["backbones"], TRAIN_CFG["backbones"], "training"
)
RIDGE_BACKBONES = chosen_backbones(config["backbones"], RIDGE_CFG["backbones"], "ridge")


rule train_brain:
    input:
        unpack(
            lambda wc: training_inputs(
                PREPROCESSED, LATENTS, [wc.subject], wc.backbone
            )
        ),
    output:
        model=f"{BRAIN_DIR}/model.safetensors",
        history=f"{BRAIN_DIR}/history.tsv",
        predictions=f"{BRAIN_DIR}/predictions.npz",
    log:
        f"{LOGS}/train_brain/{{backbone}}/sub-{{subject}}_seed-{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_brain/{{backbone}}/sub-{{subject}}_seed-{{seed}}.tsv"
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
        seed_parts=lambda wc: [int(wc.seed), wc.backbone, wc.subject],
        crop=None,
        checkpoint=lambda wc: f"{R}/checkpoints/brain/{wc.backbone}/sub-{wc.subject}/seed-{wc.seed}/last.pt",
    script:
        "../workflow/scripts/train_brain.py"


rule train_brain_shared:
    input:
        unpack(lambda wc: training_inputs(PREPROCESSED, LATENTS, SUBJECTS, wc.backbone)),
    output:
        model=f"{SHARED_DIR}/model.safetensors",
        history=f"{SHARED_DIR}/history.tsv",
        predictions=expand(
            f"{SHARED_DIR}/predictions_sub-{{subject}}.npz",
            subject=SUBJECTS,
            allow_missing=True,
        ),
    log:
        f"{LOGS}/train_brain_shared/{{backbone}}/seed-{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_brain_shared/{{backbone}}/seed-{{seed}}.tsv"
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
        subjects=SUBJECTS,
        seed_parts=lambda wc: [int(wc.seed), wc.backbone, "shared"],
        crop=None,
        checkpoint=lambda wc: f"{R}/checkpoints/brain_shared/{wc.backbone}/seed-{wc.seed}/last.pt",
    script:
        "../workflow/scripts/train_brain.py"


rule train_ridge:
    input:
        unpack(
            lambda wc: training_inputs(
                PREPROCESSED, LATENTS, [wc.subject], wc.backbone
            )
        ),
    output:
        predictions=f"{RIDGE_DIR}/predictions.npz",
        model=f"{RIDGE_DIR}/model.npz",
    log:
        f"{LOGS}/train_ridge/{{backbone}}/sub-{{subject}}.log",
    benchmark:
        f"{BENCHMARKS}/train_ridge/{{backbone}}/sub-{{subject}}.tsv"
    conda:
        CONDA_ENV
    threads: RIDGE_CFG["threads"]
    resources:
        mem_mb=lambda wc, input: job_mem_mb(input.size_mb, base=1000),
        runtime=30,
    params:
        ridge=RIDGE_PARAMS,
    script:
        "../workflow/scripts/train_ridge.py"


BRAIN_TARGETS = expand(
    f"{BRAIN_DIR}/predictions.npz",
    backbone=BRAIN_BACKBONES,
    subject=SUBJECTS,
    seed=TRAIN_CFG["seeds"],
)
SHARED_TARGETS = (
    expand(
        f"{SHARED_DIR}/predictions_sub-{{subject}}.npz",
        backbone=BRAIN_BACKBONES,
        seed=TRAIN_CFG["seeds"],
        subject=SUBJECTS,
    )
    if TRAIN_CFG["shared_model"]
    else []
)
RIDGE_TARGETS = expand(
    f"{RIDGE_DIR}/predictions.npz", backbone=RIDGE_BACKBONES, subject=SUBJECTS
)

ALL_TARGETS.extend(BRAIN_TARGETS + SHARED_TARGETS + RIDGE_TARGETS)
