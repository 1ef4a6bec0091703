"""Rule learning_curve_job: one (world, subject, replicate seed, training-set size) of the learning curve."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.experiment import learning_curve_job

    wc = snakemake.wildcards
    job = dict(world=wc.world, subject=wc.subject, replicate=int(wc.seed), n_train=int(wc.n_train))
    scores = learning_curve_job(
        snakemake.input.stimuli,
        snakemake.input.ground_truth,
        {Path(p).parent.name: Path(p).parent for p in snakemake.input.latents},
        snakemake.output.scores,
        snakemake.output.trials,
        dict(snakemake.params),
        job,
    )
    log.info("%d score rows", len(scores))
