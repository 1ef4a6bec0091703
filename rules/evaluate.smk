# Stage: evaluate (see docs/ARCHITECTURE.md).
# Retrieval of every (model, backbone, subject) and time-resolved ridge decoding per subject; jobs are
# merged where python start-up would dominate, output paths keep the per-wildcard scheme.
# Which jobs exist is decided by megdecode.evaluation_plan (unit-tested).
from megdecode import evaluation_plan as eplan

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
        cfg={k: EVAL_CFG[k] for k in ("topk", "ci_level", "timeresolved")},
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_timeresolved.py"


ALL_TARGETS += EVAL_RETRIEVAL_FILES + EVAL_TIMERESOLVED_FILES
