"""Rule learning_curve_summary: tables, paired test, slopes and figure of the learning curve."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.learning_curve.summary import learning_curve_summary

    summary = learning_curve_summary(
        list(snakemake.input),  # noqa: F821
        dict(snakemake.output),  # noqa: F821
        snakemake.params.statistics,  # noqa: F821
        int(snakemake.params.seed),  # noqa: F821
    )
    log.info("%d summary rows", len(summary))
