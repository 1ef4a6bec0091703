"""Rule learning_curve_concept_renders: fresh renders of each test concept, for the fair ceiling."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.learning_curve.oracle import concept_renders_job

    renders = concept_renders_job(
        snakemake.input.stimuli,  # noqa: F821
        snakemake.output.renders,  # noqa: F821
        int(snakemake.params.n_renders),  # noqa: F821
        int(snakemake.params.image_size),  # noqa: F821
        int(snakemake.params.seed),  # noqa: F821
    )
    log.info("%d renders of %d test concepts", len(renders), renders["concept"].nunique())
