"""Rule recipe_study_summary: the study's table, report and figure."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.recipe_summary import recipe_study_summary

    table = recipe_study_summary(
        list(snakemake.input.scores),
        list(snakemake.input.choices),
        dict(snakemake.output.items()),
        snakemake.params.statistics,
        int(snakemake.params.seed),
    )
    log.info("%d rows", len(table))
