"""Rule fmri_ceiling: the simulated 7T study's fair ideal observer on one subject's test trials."""

from pathlib import Path

from megdecode.evaluation.fmri_ceiling import fmri_ceiling_job
from megdecode.logs import job_logging

with job_logging(snakemake):
    fmri_ceiling_job(
        stimuli_table=snakemake.input.table,
        images_root=snakemake.input.images,
        subject_dir=Path(snakemake.input.betas).parent,
        subject=snakemake.wildcards.subject,
        simulation_cfg=snakemake.params.simulation,
        evaluation_cfg=snakemake.params.evaluation,
        seed=snakemake.params.seed,
        out_table=snakemake.output.table,
    )
