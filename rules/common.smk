# Config validation, output layout and helpers shared by every stage.
# Path patterns live here so that each stage finds its inputs where the previous one wrote them.
from megdecode.cluster import grow_with_attempt
from megdecode.config import (
    ConfigError,
    apply_runtime_environment,
    check_config_files,
    run_grid,
    validate_config,
)

try:
    check_config_files(workflow.configfiles)
    config = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# offline: HF_HUB_OFFLINE=1 for this process and every job
apply_runtime_environment(config)

STUDY = config["study"]
SUBJECTS = STUDY["subjects"]
SESSIONS = STUDY["sessions"]
RUNS = STUDY["runs"]
TASK = STUDY["task"]
SIMULATED = STUDY["source"] == "simulated"

R = config["results_dir"]
CONDA_ENV = "../envs/megdecode.yaml"

# Each rule file appends the files that `rule all` must produce.
ALL_TARGETS = []


wildcard_constraints:
    subject=r"[A-Za-z0-9]+",
    session=r"[A-Za-z0-9]+",
    run=r"[A-Za-z0-9]+",
    backbone=r"[A-Za-z0-9_]+",
    seed=r"\d+",
    model=r"[A-Za-z0-9_]+",
    generator=r"[A-Za-z0-9_]+",


# --- layout: one pattern per stage output (see docs/ARCHITECTURE.md) ---
RUN_STEM = f"sub-{{subject}}_ses-{{session}}_task-{TASK}_run-{{run}}"
STIMULI_TABLE = f"{R}/stimuli/stimuli.tsv"
STIMULI_IMAGES = f"{R}/stimuli/images" if SIMULATED else STUDY["stimuli_root"]
SOURCEDATA = f"{R}/sourcedata"
BIDS_ROOT = f"{R}/bids" if SIMULATED else STUDY["bids_root"]
DERIVATIVES = f"{R}/derivatives/megdecode"
PREPROCESSED = f"{R}/preprocessed/sub-{{subject}}"
LATENTS = f"{R}/latents/{{backbone}}"
MODELS = f"{R}/models"
EVALUATION = f"{R}/evaluation"
RECONSTRUCTION = f"{R}/reconstruction"
TABLES = f"{R}/tables"
FIGURES = f"{R}/figures"
LOGS = f"{R}/logs"
BENCHMARKS = f"{R}/benchmarks"

# Every (subject, session, run) of the study, as expand(..., zip, **ALL_RUNS) keyword lists.
ALL_RUNS = run_grid(SUBJECTS, SESSIONS, RUNS)


# --- one run per results directory (a lock file in it), and no duplicate of a previous run's cluster jobs ---
from megdecode import run_lock


onstart:
    try:
        if getattr(workflow.executor_plugin, "name", None) == "slurm":
            run_lock.refuse_if_previous_jobs_run(
                workflow.workdir_init, {r.name for r in workflow.rules}
            )
        run_lock.acquire(R)
    except run_lock.RunLockError as err:
        raise WorkflowError(str(err)) from None


onsuccess:
    run_lock.release(R)


onerror:
    run_lock.release(R)
