"""Rule learning_curve_concept_renders: fresh renders of each test concept, for the fair ceiling."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.oracle import concept_renders_job

    renders = concept_renders_job(
        snakemake.input.stimuli,
        snakemake.output.renders,
        int(snakemake.params.n_renders),
        int(snakemake.params.image_size),
        int(snakemake.params.seed),
    )
    log.info("%d renders of %d test concepts", len(renders), renders["concept"].nunique())
