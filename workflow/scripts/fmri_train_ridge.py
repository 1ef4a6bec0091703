"""Rule fmri_train_ridge: ridge from z-scored voxels to one backbone's latents, per subject."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.training.fmri import train_fmri_ridge

    train_fmri_ridge(
        Path(snakemake.input.betas).parent,  # noqa: F821
        Path(snakemake.input.latents).parent,  # noqa: F821
        snakemake.output.predictions,  # noqa: F821
        snakemake.output.model,  # noqa: F821
        snakemake.params.ridge,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
