"""Rule fmri_ceiling: the simulated 7T study's fair ideal observer on one subject's test trials."""

from pathlib import Path

from megdecode.evaluation.fmri_ceiling import fmri_ceiling_job
from megdecode.logs import job_logging

with job_logging(snakemake):  # noqa: F821
    fmri_ceiling_job(
        stimuli_table=snakemake.input.table,  # noqa: F821
        images_root=snakemake.input.images,  # noqa: F821
        subject_dir=Path(snakemake.input.betas).parent,  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        simulation_cfg=snakemake.params.simulation,  # noqa: F821
        evaluation_cfg=snakemake.params.evaluation,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        out_table=snakemake.output.table,  # noqa: F821
    )
