"""Rule recipe_study_crosscheck_summary: the variants compared on the selection set."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.recipe_summary import recipe_crosscheck_summary

    table = recipe_crosscheck_summary(
        list(snakemake.input.scores),
        dict(snakemake.output.items()),
        snakemake.params.statistics,
        int(snakemake.params.seed),
    )
    log.info("%d rows", len(table))
