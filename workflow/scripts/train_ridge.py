"""Rule train_ridge: ridge baseline per (backbone, subject)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.training.ridge import train_ridge

    wc = snakemake.wildcards  # noqa: F821
    model = train_ridge(
        Path(snakemake.input[f"meg_{wc.subject}"]).parent,  # noqa: F821
        Path(snakemake.input.latents).parent,  # noqa: F821
        snakemake.output.predictions,  # noqa: F821
        snakemake.output.model,  # noqa: F821
        snakemake.params.ridge,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
    log.info("alpha %g (%s)", model.alpha, model.selection)
