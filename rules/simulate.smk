# Stage: simulate (see docs/ARCHITECTURE.md). Only for study.source 'simulated'.
from snakemake_interface_executor_plugins.settings import ExecMode

from megdecode.artifacts.stimuli import check_image_checksums

SIM_GROUND_TRUTH = L.ground_truth
SIM_SUBJECT_TRUTH = L.subject_ground_truth
SIM_RAW = L.source_run("raw")
SIM_LOG = L.source_run("log")
# the stimuli job sees only what shapes the images and the encoding (noise/timing changes keep the latents)
SIM_STIMULI_CFG = {
    k: v
    for k, v in config["simulation"].items()
    if k in ("stimuli", "responses", "trigger_codes")
}


# one subject's files for every session x run (subject stays a wildcard), sessions outer
SIM_SUBJECT_RAWS = [
    SIM_RAW.replace("{session}", ses).replace("{run}", run)
    for ses in SESSIONS
    for run in RUNS
]
SIM_SUBJECT_LOGS = [
    SIM_LOG.replace("{session}", ses).replace("{run}", run)
    for ses in SESSIONS
    for run in RUNS
]


rule simulate_stimuli:
    output:
        table=STIMULI_TABLE,
        images=directory(STIMULI_IMAGES),
        truth=SIM_GROUND_TRUTH,
    log:
        L.log("simulate_stimuli"),
    benchmark:
        L.benchmark("simulate_stimuli")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cfg=SIM_STIMULI_CFG,
        seed=config["seed"],
    script:
        "../workflow/scripts/simulate_stimuli.py"


rule simulate_subject:
    input:
        table=STIMULI_TABLE,
        truth=SIM_GROUND_TRUTH,
    output:
        raws=SIM_SUBJECT_RAWS,
        logs=SIM_SUBJECT_LOGS,
        truth=SIM_SUBJECT_TRUTH,
    log:
        L.log("simulate_subject", "sub-{subject}"),
    benchmark:
        L.benchmark("simulate_subject", "sub-{subject}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        cfg=config["simulation"],
        seed=config["seed"],
        sessions=SESSIONS,
        runs=RUNS,
    script:
        "../workflow/scripts/simulate_subject.py"


# Images changed after simulate_stimuli wrote them (inside a directory output, Snakemake cannot see it):
# refused when the workflow starts, dry runs included (not again in every job).
if SIMULATED and workflow.exec_mode == ExecMode.DEFAULT:
    try:
        check_image_checksums(rules.simulate_stimuli.output.images)
    except ValueError as err:
        raise WorkflowError(str(err)) from None


if SIMULATED:
    ALL_TARGETS += [STIMULI_TABLE, SIM_GROUND_TRUTH]
    ALL_TARGETS += expand(SIM_SUBJECT_TRUTH, subject=SUBJECTS)
    ALL_TARGETS += expand(SIM_RAW, zip, **ALL_RUNS)
    ALL_TARGETS += expand(SIM_LOG, zip, **ALL_RUNS)
