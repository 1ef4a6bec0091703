# Stage: train (see docs/ARCHITECTURE.md).
# Brain module per (backbone, subject, seed); optionally one model shared by all subjects per
# (backbone, seed); ridge baseline per (backbone, subject). Checkpoints live outside the declared
# outputs ({R}/checkpoints/...) so a killed job resumes where it stopped. Which jobs exist: PLAN.
from megdecode.training.config import JOB_KEYS

TRAIN_CFG = config["training"]
RIDGE_CFG = config["ridge"]
# keys that choose which jobs exist are not passed to jobs (editing them reruns nothing)
TRAIN_PARAMS = {k: v for k, v in TRAIN_CFG.items() if k not in JOB_KEYS}
RIDGE_PARAMS = {k: v for k, v in RIDGE_CFG.items() if k not in ("backbones", "threads")}
BRAIN_DIR = L.model_dir("brain")
SHARED_DIR = L.model_dir("brain_shared")
RIDGE_DIR = L.model_dir("ridge")


rule train_brain:
    input:
        unpack(lambda wc: training_inputs([wc.subject], wc.backbone)),
    output:
        model=f"{BRAIN_DIR}/model.safetensors",
        history=f"{BRAIN_DIR}/history.tsv",
        predictions=L.predictions("brain"),
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
        checkpoint=lambda wc: L.checkpoint("brain").format(**dict(wc.items())),
    script:
        "../workflow/scripts/train_brain.py"


rule train_brain_shared:
    input:
        unpack(lambda wc: training_inputs(SUBJECTS, wc.backbone)),
    output:
        model=f"{SHARED_DIR}/model.safetensors",
        history=f"{SHARED_DIR}/history.tsv",
        predictions=expand(
            L.predictions("brain_shared"), subject=SUBJECTS, allow_missing=True
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
        checkpoint=lambda wc: L.checkpoint("brain_shared").format(**dict(wc.items())),
    script:
        "../workflow/scripts/train_brain.py"


rule train_ridge:
    input:
        unpack(lambda wc: training_inputs([wc.subject], wc.backbone)),
    output:
        predictions=L.predictions("ridge"),
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
    L.predictions("brain"),
    backbone=PLAN.brain_backbones,
    subject=SUBJECTS,
    seed=PLAN.seeds,
)
SHARED_TARGETS = (
    expand(
        L.predictions("brain_shared"),
        backbone=PLAN.brain_backbones,
        seed=PLAN.seeds,
        subject=SUBJECTS,
    )
    if PLAN.shared_model
    else []
)
RIDGE_TARGETS = expand(
    L.predictions("ridge"), backbone=PLAN.ridge_backbones, subject=SUBJECTS
)

ALL_TARGETS.extend(BRAIN_TARGETS + SHARED_TARGETS + RIDGE_TARGETS)
