"""Rule recipe_study_summary: the study's table, report and figure."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.learning_curve.recipe_summary import recipe_study_summary

    table = recipe_study_summary(
        list(snakemake.input.scores),  # noqa: F821
        list(snakemake.input.choices),  # noqa: F821
        dict(snakemake.output.items()),  # noqa: F821
        snakemake.params.statistics,  # noqa: F821
        int(snakemake.params.seed),  # noqa: F821
    )
    log.info("%d rows", len(table))
