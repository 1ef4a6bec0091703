# Stage: evaluate (see docs/ARCHITECTURE.md).
# Retrieval of every (model, backbone, subject) and time-resolved ridge decoding per subject; jobs are
# merged where python start-up would dominate, output paths keep the per-wildcard scheme.
# Which jobs exist: PLAN (megdecode.plan, unit-tested).
# The brain module is trained again per listed window (evaluation.timeresolved.brain_windows) with
# TRAIN's code on cropped epochs; evaluate_timeresolved scores it beside the ridge windows.
import re

EVAL_CFG = config["evaluation"]
EVAL_JOBS = PLAN.retrieval_jobs(L)
EVAL_RETRIEVAL_FILES = [f for job in EVAL_JOBS for f in job["outputs"].values()]
EVAL_TIMERESOLVED_FILES = expand(
    L.timeresolved_table, backbone=PLAN.timeresolved_backbones, subject=SUBJECTS
)


# The brain module on the epoch cropped to one listed window, per (backbone, subject, window).
rule train_brain_window:
    input:
        unpack(lambda wc: training_inputs([wc.subject], wc.backbone)),
    output:
        model=L.model_file("brain_window", "weights"),
        history=L.model_file("brain_window", "history"),
        predictions=L.predictions("brain_window"),
    log:
        L.log("train_brain_window", "{backbone}/sub-{subject}_{window}"),
    benchmark:
        L.benchmark("train_brain_window", "{backbone}/sub-{subject}_{window}")
    wildcard_constraints:
        window="|".join(map(re.escape, PLAN.windows)) or "no-brain-window",
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
        crop=lambda wc: list(PLAN.windows[wc.window]),
        checkpoint=lambda wc: L.checkpoint("brain_window").format(**dict(wc.items())),
    script:
        "../workflow/scripts/train_brain.py"


# One job for all (model, backbone, subject): each is sub-second, python start-up would dominate.
rule evaluate_retrieval:
    input:
        latents=latent_files(PLAN.evaluated_backbones, "latents", "index", "meta"),
        predictions=sorted(
            {
                f
                for job in EVAL_JOBS
                for files in job["prediction_files"].values()
                for f in files
            }
        ),
    output:
        EVAL_RETRIEVAL_FILES,
    log:
        L.log("evaluate_retrieval"),
    benchmark:
        L.benchmark("evaluate_retrieval")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        jobs=EVAL_JOBS,
        cfg={
            k: EVAL_CFG[k]
            for k in ("topk", "n_bootstrap", "ci_level", "chance_shuffles")
        },
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_retrieval.py"


# One job per subject for every backbone: the MEG array is read once.
rule evaluate_timeresolved:
    input:
        **SUBJECT_FILES,
        latents=latent_files(PLAN.timeresolved_backbones, "latents", "index"),
        brain_windows=lambda wc: [
            f
            for per in PLAN.brain_window_files(L, wc.subject).values()
            for f in per.values()
        ],
    output:
        expand(
            L.timeresolved_table,
            backbone=PLAN.timeresolved_backbones,
            allow_missing=True,
        ),
    log:
        L.log("evaluate_timeresolved", "sub-{subject}"),
    benchmark:
        L.benchmark("evaluate_timeresolved", "sub-{subject}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        latent_dirs={b: LATENTS.format(backbone=b) for b in PLAN.timeresolved_backbones},
        outputs=lambda wc: {
            b: L.timeresolved_table.format(backbone=b, subject=wc.subject)
            for b in PLAN.timeresolved_backbones
        },
        brain_window_files=lambda wc: PLAN.brain_window_files(L, wc.subject),
        cfg={k: EVAL_CFG[k] for k in ("topk", "ci_level", "timeresolved")},
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_timeresolved.py"


ALL_TARGETS += EVAL_RETRIEVAL_FILES + EVAL_TIMERESOLVED_FILES
