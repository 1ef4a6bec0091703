"""Rule learning_curve_job: one (world, subject, replicate seed, training-set size) of the learning curve."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.learning_curve.experiment import learning_curve_job

    wc = snakemake.wildcards  # noqa: F821
    job = dict(world=wc.world, subject=wc.subject, replicate=int(wc.seed), n_train=int(wc.n_train))
    scores = learning_curve_job(
        snakemake.input.stimuli,  # noqa: F821
        snakemake.input.ground_truth,  # noqa: F821
        {Path(p).parent.name: Path(p).parent for p in snakemake.input.latents},  # noqa: F821
        snakemake.output.scores,  # noqa: F821
        snakemake.output.trials,  # noqa: F821
        dict(snakemake.params),  # noqa: F821
        job,
        snakemake.input.concept_renders,  # noqa: F821
    )
    log.info("%d score rows", len(scores))
