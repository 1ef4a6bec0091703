"""Rule learning_curve_summary: tables, paired test, slopes and figure of the learning curve."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.summary import learning_curve_summary

    summary = learning_curve_summary(
        list(snakemake.input),
        dict(snakemake.output),
        snakemake.params.statistics,
        int(snakemake.params.seed),
    )
    log.info("%d summary rows", len(summary))
