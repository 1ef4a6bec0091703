# Stage: the Natural Scenes Dataset (docs/nsd.md). Only for study.source 'nsd': NSD's stimuli become the
# study's stimuli table and images (for the latents stage), and each subject's single-trial betas become the
# fMRI contract's files (megdecode.artifacts.fmri) for the fMRI decoders. Reads nsd.root (megdecode.datasets.nsd).
from megdecode.artifacts.fmri import subject_files as nsd_fmri_subject_files
from megdecode.datasets.nsd import (
    NsdDataError,
    NsdLayout,
    configured_sessions,
    settings_from_config,
)

NSD_SOURCE = STUDY["source"] == "nsd"


if NSD_SOURCE:
    NSD_CFG = config["nsd"]
    try:
        NSD = NsdLayout.from_settings(settings_from_config(NSD_CFG))
        NSD_SESSIONS = configured_sessions(NSD_CFG, SESSIONS)
        NSD_SUBJECT_INPUTS = {
            s: [str(p) for p in NSD.subject_inputs(s, NSD_SESSIONS)] for s in SUBJECTS
        }
    except NsdDataError as err:
        raise WorkflowError(str(err)) from None
    NSD_SUBJECT_FILES = nsd_fmri_subject_files(L.fmri_subject)

    # NSD brings its own stimuli (the simulated and BIDS studies' stimuli rules would make them otherwise)
    ruleorder: nsd_stimuli > stimuli_table > simulate_stimuli
    # and its own fMRI responses (the simulated 7T study's rule writes the same files otherwise)
    ruleorder: nsd_subject > simulate_fmri

    rule nsd_stimuli:
        """The stimuli table and images of every NSD image the configured subjects saw."""
        input:
            design=str(NSD.design()),
            stimuli=str(NSD.stimuli()),
        output:
            table=STIMULI_TABLE,
            images=directory(STIMULI_IMAGES),
        log:
            L.log("nsd_stimuli"),
        benchmark:
            L.benchmark("nsd_stimuli")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        params:
            cfg=NSD_CFG,
            subjects=SUBJECTS,
            sessions=NSD_SESSIONS,
            seed=config["seed"],
        script:
            "../workflow/scripts/nsd_stimuli.py"

    rule nsd_subject:
        """One NSD subject: ROI voxels of every configured session's betas, in percent signal change."""
        input:
            lambda wildcards: NSD_SUBJECT_INPUTS[wildcards.subject],
        output:
            **NSD_SUBJECT_FILES,
        log:
            L.log("nsd_subject", "sub-{subject}"),
        benchmark:
            L.benchmark("nsd_subject", "sub-{subject}")
        wildcard_constraints:
            subject="|".join(SUBJECTS),
        conda:
            CONDA_ENV
        threads: 1
        resources:
            # 40 x 750 trials x ~15,000 nsdgeneral voxels, float32 (~2 GB), plus one session's ROI box
            mem_mb=12000,
            runtime=120,
        params:
            cfg=NSD_CFG,
            sessions=NSD_SESSIONS,
            seed=config["seed"],
        script:
            "../workflow/scripts/nsd_subject.py"

    # `rule all` of an NSD study: no MEG stage; NSD's stimuli and subjects, and the fMRI decoders' retrieval
    # tables when the fMRI modality is on (fmri.enabled, fmri.source 'nsd'; rules/fmri.smk)
    NSD_TARGETS = [
        STIMULI_TABLE,
        *expand(NSD_SUBJECT_FILES["betas"], subject=SUBJECTS),
    ]
    if PLAN.fmri is not None:
        NSD_TARGETS += [
            f
            for job in PLAN.fmri.retrieval_jobs(L)
            for f in job["outputs"].values()
        ]
