"""Rule simulate_fmri: one subject of the simulated 7T fMRI study, and its ground truth."""

from pathlib import Path

from megdecode.artifacts.fmri import write_fmri_subject
from megdecode.logs import job_logging
from megdecode.simulate.fmri import simulate_fmri_subject, write_ground_truth

with job_logging(snakemake) as log:  # noqa: F821
    subject, truth = simulate_fmri_subject(
        stimuli_table=snakemake.input.table,  # noqa: F821
        images_root=snakemake.input.images,  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
    write_fmri_subject(Path(snakemake.output.betas).parent, subject)  # noqa: F821
    write_ground_truth(truth, snakemake.output.truth)  # noqa: F821
    log.info(
        "%d trials x %d voxels; median noise ceiling %.3f (1 trial), %.3f (3 trials)",
        *subject.betas.shape,
        truth["noise_ceiling_single_trial_median"],
        truth["noise_ceiling_3_trials_median"],
    )
