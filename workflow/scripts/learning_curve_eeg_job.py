"""Rule learning_curve_eeg_job: one (world, subject, replicate seed, training-set size) of the EEG curve."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.eeg import eeg_curve_job

    wc = snakemake.wildcards
    scores = eeg_curve_job(
        dict(snakemake.input),
        snakemake.output.scores,
        snakemake.output.trials,
        dict(snakemake.params),
        {**dict(wc), "replicate": int(wc.seed), "n_train": int(wc.n_train)},
    )
    log.info("%d score rows", len(scores))
