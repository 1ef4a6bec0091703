# Stage: bids (see docs/ARCHITECTURE.md).
# Simulated study: one job per run converts sourcedata to BIDS (mne-bids, in a private temporary root, so
# runs never race), then one dataset-level job writes the files that all runs share.
# Existing BIDS dataset (study.source 'bids'): a check step (inventory) and the stimuli table.
from pathlib import Path

from megdecode.bids import DATASET_KEYS
from megdecode.datasets.things import check_dataset_complete

BIDS_RUN_FILES = L.bids_run_files  # raw, sidecar, channels, events of one run
BIDS_SESSION_FILES = L.bids_session_files  # scans, coordsystem of one session
BIDS_INVENTORY = L.bids_inventory
# per-run jobs get the bids settings minus the dataset-level ones (renaming the dataset reruns one job)
BIDS_RUN_CFG = {k: v for k, v in config["bids"].items() if k not in DATASET_KEYS}
BIDS_DATASET_CFG = {k: config["bids"][k] for k in DATASET_KEYS}


# Input function for downstream rules (preprocessing): bids_run_files(wildcards) -> {"raw", "events"},
# the run's ..._meg.fif (simulated) or ..._meg.ds (existing CTF dataset) and its ..._events.tsv.
bids_run_files = L.bids_input_function()


if SIMULATED:

    rule bids_run:
        """Convert one sourcedata run to BIDS: triggers matched to the log, photodiode-corrected events."""
        input:
            raw=L.source_run("raw"),
            log=L.source_run("log"),
            ground_truth=L.ground_truth,
        output:
            **BIDS_RUN_FILES,
        log:
            L.log("bids_run", RUN_STEM),
        benchmark:
            L.benchmark("bids_run", RUN_STEM)
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            cfg=BIDS_RUN_CFG,
            bids_root=lambda w, output: str(Path(output.raw).parents[3]),
            task=TASK,
        script:
            "../workflow/scripts/bids_run.py"

    rule bids_dataset:
        """Dataset-level BIDS files, written once after every run: description, participants, scans, README."""
        input:
            raw=expand(BIDS_RUN_FILES["raw"], zip, **ALL_RUNS),
            events=expand(BIDS_RUN_FILES["events"], zip, **ALL_RUNS),
        output:
            **L.bids_dataset_files,
            scans=expand(
                BIDS_SESSION_FILES["scans"], subject=SUBJECTS, session=SESSIONS
            ),
            coordsystem=expand(
                BIDS_SESSION_FILES["coordsystem"], subject=SUBJECTS, session=SESSIONS
            ),
        log:
            L.log("bids_dataset"),
        benchmark:
            L.benchmark("bids_dataset")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            cfg=BIDS_DATASET_CFG,
            bids_root=lambda w, output: str(Path(output.description).parent),
            task=TASK,
            runs=list(zip(*ALL_RUNS.values())),
        script:
            "../workflow/scripts/bids_dataset.py"

    ALL_TARGETS.extend(rules.bids_dataset.output)
    ALL_TARGETS.extend(expand(rules.bids_run.output, zip, **ALL_RUNS))

else:

    # every configured run's files must exist before Snakemake looks for a run's inputs (it would only say
    # "missing input ..._meg.ds"): name each incomplete run, and a renamed recording, now
    if STUDY["source"] == "bids":
        try:
            check_dataset_complete(BIDS_ROOT, SUBJECTS, SESSIONS, RUNS, TASK)
        except FileNotFoundError as err:
            raise WorkflowError(str(err)) from None

    # an existing dataset brings its own stimuli table (simulate_stimuli would make one otherwise)
    ruleorder: stimuli_table > simulate_stimuli

    rule bids_inventory:
        """Check an existing BIDS dataset: one row per configured run; fails clearly on what is missing."""
        output:
            BIDS_INVENTORY,
        log:
            L.log("bids_inventory"),
        benchmark:
            L.benchmark("bids_inventory")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            bids_root=BIDS_ROOT,
            subjects=SUBJECTS,
            sessions=SESSIONS,
            runs=RUNS,
            task=TASK,
        script:
            "../workflow/scripts/bids_inventory.py"

    rule stimuli_table:
        """The stimuli table of an existing dataset, from its events.tsv files and study.image_table."""
        input:
            inventory=BIDS_INVENTORY,
            image_table=[STUDY["image_table"]] if STUDY["image_table"] else [],
        output:
            STIMULI_TABLE,
        log:
            L.log("stimuli_table"),
        benchmark:
            L.benchmark("stimuli_table")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            bids_root=BIDS_ROOT,
            image_table=STUDY["image_table"],
            subjects=SUBJECTS,
            sessions=SESSIONS,
            runs=RUNS,
            task=TASK,
        script:
            "../workflow/scripts/stimuli_table.py"

    ALL_TARGETS.extend([BIDS_INVENTORY, STIMULI_TABLE])
