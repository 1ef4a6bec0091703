"""Rule recipe_study_select: a variant's candidate settings compared on held-out training concepts."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.artifacts.recipe_study import write_choice, write_scores
    from megdecode.learning_curve.recipe import selection_job, study_inputs

    wc = snakemake.wildcards
    params = dict(snakemake.params)
    unit = params["selection"]
    inputs = study_inputs(snakemake.input, params)
    choice, scores = selection_job(
        inputs, wc.world, unit["subject"], int(unit["seed"]), int(unit["n_train"]), inputs.variant(wc.variant)
    )
    write_scores(scores, snakemake.output.scores)
    write_choice(choice, snakemake.output.choice)
    log.info("chose stop on %s, lr %g", choice["stop_on"], choice["lr"])
