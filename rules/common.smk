# Config validation, the job plan and the output layout shared by every stage.
# Path patterns come from megdecode.artifacts.paths (the package reads them there too); which jobs exist
# comes from megdecode.plan.
import sys

from megdecode.artifacts.fmri import subject_files as fmri_subject_files
from megdecode.artifacts.latents import latent_files as backbone_files
from megdecode.artifacts.paths import Layout
from megdecode.artifacts.preprocessed import subject_files
from megdecode.artifacts.attribute_readout import readout_files
from megdecode.cluster import grow_with_attempt
from megdecode.config import (
    ConfigError,
    apply_runtime_environment,
    check_interpreter_path,
    run_grid,
    validate_workflow_config,
)
from megdecode.plan import make_plan

try:
    check_interpreter_path(sys.executable)
    # merged in order, as megdecode.config.load_config merges: the default (unless another study's), each
    # --configfile, the --config values. (Snakemake's own merge puts the overlays' keys first, while the
    # backbones' order is the tables' row order.)
    config = validate_workflow_config(
        [
            *([DEFAULT_CONFIGFILE] if DEFAULT_CONFIGFILE else []),
            *workflow.overwrite_configfiles,
        ],
        workflow.config_settings.config,
    )
    PLAN = make_plan(config)
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

L = Layout.from_config(config)
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


# --- layout: short names for the patterns of megdecode.artifacts.paths (see docs/ARCHITECTURE.md) ---
# (every path, every job's log and benchmark included, comes from L: no rule file builds one by hand)
RUN_STEM = L.run_stem
STIMULI_TABLE = L.stimuli_table
STIMULI_IMAGES = L.stimuli_images
BIDS_ROOT = L.bids_root
PREPROCESSED = L.preprocessed
LATENTS = L.latents
# the files of one subject's preprocessed folder and of one backbone's latents, named by their owner modules
SUBJECT_FILES = subject_files(
    PREPROCESSED
)  # meg, trials, channels, info ({subject} kept)
LATENT_FILES = backbone_files(LATENTS)  # latents, index, meta ({backbone} kept)
FMRI_SUBJECT_FILES = fmri_subject_files(L.fmri_subject)  # betas, trials, voxels, info
ATTRIBUTE_READOUT_FILES = readout_files(L.attribute_readout)  # model, accuracy

# Every (subject, session, run) of the study, as expand(..., zip, **ALL_RUNS) keyword lists.
ALL_RUNS = run_grid(SUBJECTS, SESSIONS, RUNS)


# --- input helpers shared by several stages ---
def training_inputs(subjects, backbone):
    """The subjects' preprocessed files (``meg_<subject>``, ...) and the backbone's latents."""
    inputs = {
        f"{kind}_{subject}": path.format(subject=subject)
        for subject in subjects
        for kind, path in SUBJECT_FILES.items()
    }
    return {
        **inputs,
        **{k: LATENT_FILES[k].format(backbone=backbone) for k in ("latents", "index")},
    }


def job_mem_mb(input_size_mb, base=2000):
    """Memory request: a base for the interpreter and model plus half the (memory-mapped) inputs."""
    return int(base + 0.5 * input_size_mb)


def latent_files(backbones, *kinds):
    """The files of each backbone named by ``kinds`` (keys of LATENT_FILES: latents, index, meta)."""
    return expand([LATENT_FILES[k] for k in kinds], backbone=backbones)


# --- one run per results directory (a lock file in it), and no duplicate of a previous run's cluster jobs;
# checked before Snakemake builds its executor (a SLURM executor refused later deletes the old jobs' log folders)
from megdecode import run_lock

run_lock.check_before_jobs_start(workflow, L.results)


onsuccess:
    run_lock.release(L.results)


onerror:
    run_lock.release(L.results)
