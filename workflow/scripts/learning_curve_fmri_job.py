"""Rule learning_curve_fmri_job: one (subject, replicate seed, size) of the fMRI learning curve."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.fmri import fmri_curve_job

    wc = snakemake.wildcards
    job = dict(subject=wc.subject, replicate=int(wc.seed), n_train=int(wc.n_train))
    scores = fmri_curve_job(
        snakemake.input.stimuli,
        snakemake.input.code,
        {Path(p).parent.name: Path(p).parent for p in snakemake.input.latents},
        snakemake.output.scores,
        snakemake.output.trials,
        dict(snakemake.params),
        job,
    )
    log.info("%d score rows", len(scores))
