"""Rule recipe_study_ceiling: the image oracle and the fair ceiling on one subject's test trials."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.artifacts.learning_curve import read_concept_renders
    from megdecode.artifacts.recipe_study import write_scores
    from megdecode.learning_curve.recipe import ceiling_job, study_inputs

    wc = snakemake.wildcards
    inputs = study_inputs(snakemake.input, dict(snakemake.params))
    renders = read_concept_renders(snakemake.input.concept_renders)
    scores = ceiling_job(inputs, wc.world, wc.subject, int(wc.seed), renders)
    write_scores(scores, snakemake.output.scores)
    log.info("%d score rows", len(scores))
