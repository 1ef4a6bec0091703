"""Rule simulate_fmri: one subject of the simulated 7T fMRI study, and its ground truth."""

from pathlib import Path

from megdecode.artifacts.fmri import write_fmri_subject
from megdecode.logs import job_logging
from megdecode.simulate.fmri import simulate_fmri_subject, write_ground_truth

with job_logging(snakemake) as log:
    subject, truth = simulate_fmri_subject(
        stimuli_table=snakemake.input.table,
        images_root=snakemake.input.images,
        subject=snakemake.wildcards.subject,
        cfg=snakemake.params.cfg,
        seed=snakemake.params.seed,
    )
    write_fmri_subject(Path(snakemake.output.betas).parent, subject)
    write_ground_truth(truth, snakemake.output.truth)
    log.info(
        "%d trials x %d voxels; median noise ceiling %.3f (1 trial), %.3f (3 trials)",
        *subject.betas.shape,
        truth["noise_ceiling_single_trial_median"],
        truth["noise_ceiling_3_trials_median"],
    )
