# megdecode: decode seen images from MEG (after Benchetrit, Banville & King, 2023).
# Thin on purpose: configuration, validation and one include per stage; the work is in src/megdecode.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default. A --configfile is an overlay on it (mappings merge, other values replace; a backbone
# set to null is removed), except a config of another study (study.source not simulated, e.g.
# config/things-meg.yaml), which starts from the schema's defaults: nothing of the simulated study leaks in.
# --replace-workflow-config: the --configfile alone, too.
from megdecode.config import extends_default

DEFAULT_CONFIGFILE = (
    "config.yaml"
    if extends_default(config) and not workflow.config_settings.replace_workflow_config
    else None
)
if DEFAULT_CONFIGFILE:

    configfile: DEFAULT_CONFIGFILE


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/bids.smk"
include: "rules/nsd.smk"
include: "rules/eeg.smk"
include: "rules/preprocess.smk"
include: "rules/latents.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/reconstruct.smk"
include: "rules/report.smk"
include: "rules/learning_curve.smk"
include: "rules/recipe_study.smk"
include: "rules/realtime.smk"
include: "rules/fmri.smk"


# Every rule's own mem_mb and runtime grow with each retry (x attempt): a job killed for memory gets more.
grow_with_attempt(workflow)


rule all:
    default_target: True
    input:
        # an NSD study (study.source 'nsd') has no MEG stage: its targets come from rules/nsd.smk; a
        # THINGS-EEG2 study's MEG stages are replaced by the EEG ones (rules/eeg.smk)
        (
            NSD_TARGETS
            if NSD_SOURCE
            else eeg_study_targets(ALL_TARGETS) if EEG_SOURCE else ALL_TARGETS
        ),


# The learning-curve experiment (docs/learning-curve.md): its own target, not part of `all`.
rule learning_curve:
    input:
        **LC_SUMMARY_FILES,


# The preregistered recipe study (docs/recipe-study.md): its own target, not part of `all`.
rule recipe_study:
    input:
        **RS_SUMMARY_FILES,
        **RS_CROSSCHECK_FILES,


# THINGS-EEG2 to BIDS-EEG and the published EEG recipe (docs/eeg.md): its own target, not part of `all`.
rule things_eeg2:
    input:
        EEG_TARGETS,
