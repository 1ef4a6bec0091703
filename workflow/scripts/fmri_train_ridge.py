"""Rule fmri_train_ridge: ridge from z-scored voxels to one backbone's latents, per subject."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.training.fmri import train_fmri_ridge

    train_fmri_ridge(
        Path(snakemake.input.betas).parent,
        Path(snakemake.input.latents).parent,
        snakemake.output.predictions,
        snakemake.output.model,
        snakemake.params.ridge,
        threads=snakemake.threads,
    )
