"""Rules recipe_study_brain / recipe_study_shared / recipe_study_crosscheck: one variant's brain module on
one unit, or one model shared by the subjects (``params.subjects``); the cross-check scores the unit's model
on the selection set instead of the test sets (``params.on_selection_set``)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.artifacts.recipe_study import write_scores
    from megdecode.learning_curve.recipe import brain_job, read_choice, study_inputs

    wc = snakemake.wildcards
    params = dict(snakemake.params)
    inputs = study_inputs(snakemake.input, params)
    variant = inputs.variant(wc.variant)
    choice = read_choice(snakemake.input.get("choice") or None, variant)
    subjects = params.get("subjects") or [wc.subject]
    scores = brain_job(
        inputs,
        wc.world,
        subjects,
        int(wc.seed),
        int(wc.n_train),
        variant,
        choice,
        on_selection_set=bool(params.get("on_selection_set", False)),
    )
    write_scores(scores, snakemake.output.scores)
    log.info("%d score rows (stop on %s, lr %g)", len(scores), choice["stop_on"], choice["lr"])
