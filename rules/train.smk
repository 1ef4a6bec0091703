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


rule train_brain:
    input:
        unpack(lambda wc: training_inputs([wc.subject], wc.backbone)),
    output:
        model=L.model_file("brain", "weights"),
        history=L.model_file("brain", "history"),
        predictions=L.predictions("brain"),
    log:
        L.log("train_brain", "{backbone}/sub-{subject}_seed-{seed}"),
    benchmark:
        L.benchmark("train_brain", "{backbone}/sub-{subject}_seed-{seed}")
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
        model=L.model_file("brain_shared", "weights"),
        history=L.model_file("brain_shared", "history"),
        predictions=expand(
            L.predictions("brain_shared"), subject=SUBJECTS, allow_missing=True
        ),
    log:
        L.log("train_brain_shared", "{backbone}/seed-{seed}"),
    benchmark:
        L.benchmark("train_brain_shared", "{backbone}/seed-{seed}")
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
        model=L.model_file("ridge", "coefficients"),
    log:
        L.log("train_ridge", "{backbone}/sub-{subject}"),
    benchmark:
        L.benchmark("train_ridge", "{backbone}/sub-{subject}")
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
