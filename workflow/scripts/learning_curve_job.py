"""Rules learning_curve_job and learning_curve_fmri_job: one (world or fMRI, subject, replicate seed,
training-set size) of the learning curve."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.experiment import learning_curve_job
    from megdecode.learning_curve.fmri import fmri_curve_job

    run = fmri_curve_job if snakemake.rule == "learning_curve_fmri_job" else learning_curve_job
    wc = snakemake.wildcards
    scores = run(
        dict(snakemake.input),
        snakemake.output.scores,
        snakemake.output.trials,
        dict(snakemake.params),
        {**dict(wc), "replicate": int(wc.seed), "n_train": int(wc.n_train)},
    )
    log.info("%d score rows", len(scores))
