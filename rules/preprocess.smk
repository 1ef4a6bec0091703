# Stage: preprocess (see docs/ARCHITECTURE.md).
# Per run: BIDS recording -> epochs (BIDS derivative) + QC row + power spectra.
# Per subject: runs -> meg.npy / trials.tsv / channels.tsv / info.json (training inputs) + QC report.
from megdecode.preprocessing.paths import subject_runs_function

PRE_RUN_EPOCHS = L.epochs
PRE_RUN_QC = L.qc_run("qc")
PRE_RUN_PSD = L.qc_run("psd")
PRE_RUNS_TABLE = L.qc_runs_table
PRE_REPORT = L.qc_report
# the dataset must be complete (sidecars such as coordsystem.json) before a run is read
PRE_DATASET_READY = L.bids_ready


rule preprocess_run:
    """One run: pick MEG sensors by kind, band-pass, epoch around events.tsv 'sample', baseline, decimate."""
    input:
        unpack(bids_run_files),
        stimuli=STIMULI_TABLE,
        dataset=PRE_DATASET_READY,
    output:
        epochs=PRE_RUN_EPOCHS,
        qc=PRE_RUN_QC,
        psd=PRE_RUN_PSD,
    log:
        L.log("preprocess_run", RUN_STEM),
    benchmark:
        L.benchmark("preprocess_run", RUN_STEM)
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        cfg=config["preprocessing"],
    script:
        "../workflow/scripts/preprocess_run.py"


rule preprocess_subject:
    """One subject: splits, robust scaling fitted on train trials, memory-mappable float32 array; QC report.

    The report is made by the same job (one process start per subject keeps the stage lean).
    """
    input:
        epochs=subject_runs_function(PRE_RUN_EPOCHS, SESSIONS, RUNS),
        qc=subject_runs_function(PRE_RUN_QC, SESSIONS, RUNS),
        psd=subject_runs_function(PRE_RUN_PSD, SESSIONS, RUNS),
    output:
        **SUBJECT_FILES,
        runs=PRE_RUNS_TABLE,
        report=report(
            PRE_REPORT,
            category="Quality control",
            subcategory="Preprocessing",
            labels={"subject": "{subject}", "figure": "QC report"},
        ),
    log:
        L.log("preprocess_subject", "sub-{subject}"),
    benchmark:
        L.benchmark("preprocess_subject", "sub-{subject}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=config["preprocessing"],
        seed=config["seed"],
        validation=config["training"]["validation"],
    script:
        "../workflow/scripts/preprocess_subject.py"


rule preprocess_description:
    """dataset_description.json of the derivatives tree (BIDS derivative dataset)."""
    output:
        L.derivatives_description,
    log:
        L.log("preprocess_description"),
    benchmark:
        L.benchmark("preprocess_description")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        cfg=config["preprocessing"],
    script:
        "../workflow/scripts/preprocess_description.py"


ALL_TARGETS.extend(
    expand(
        [
            SUBJECT_FILES["meg"],
            SUBJECT_FILES["trials"],
            PRE_RUNS_TABLE,
            PRE_REPORT,
        ],
        subject=SUBJECTS,
    )
    + [L.derivatives_description]
)
