"""Rule recipe_study_ridge: ridge of one unit for one validation type."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.artifacts.recipe_study import write_scores
    from megdecode.learning_curve.recipe import ridge_job, study_inputs

    wc = snakemake.wildcards
    inputs = study_inputs(snakemake.input, dict(snakemake.params))
    scores = ridge_job(inputs, wc.world, wc.subject, int(wc.seed), int(wc.n_train), wc.validation)
    write_scores(scores, snakemake.output.scores)
    log.info("%d score rows", len(scores))
