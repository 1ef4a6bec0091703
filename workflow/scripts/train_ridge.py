"""Rule train_ridge: ridge baseline per (backbone, subject)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.training.ridge import train_ridge

    wc = snakemake.wildcards
    model = train_ridge(
        Path(snakemake.input[f"meg_{wc.subject}"]).parent,
        Path(snakemake.input.latents).parent,
        snakemake.output.predictions,
        snakemake.output.model,
        snakemake.params.ridge,
        threads=snakemake.threads,
    )
    log.info("alpha %g (%s)", model.alpha, model.selection)
