"""Rule learning_curve_fmri_job: one (subject, replicate seed, size) of the fMRI learning curve."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.learning_curve.fmri import fmri_curve_job

    wc = snakemake.wildcards  # noqa: F821
    job = dict(subject=wc.subject, replicate=int(wc.seed), n_train=int(wc.n_train))
    scores = fmri_curve_job(
        snakemake.input.stimuli,  # noqa: F821
        snakemake.input.code,  # noqa: F821
        {Path(p).parent.name: Path(p).parent for p in snakemake.input.latents},  # noqa: F821
        snakemake.output.scores,  # noqa: F821
        snakemake.output.trials,  # noqa: F821
        dict(snakemake.params),  # noqa: F821
        job,
    )
    log.info("%d score rows", len(scores))
