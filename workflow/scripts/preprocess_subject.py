"""Snakemake script: assemble one subject's training inputs (see megdecode.preprocessing.assemble)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.preprocessing.assemble import assemble_subject

    trials = assemble_subject(
        epochs_paths=list(snakemake.input.epochs),  # noqa: F821
        qc_paths=list(snakemake.input.qc),  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        out_meg=snakemake.output.meg,  # noqa: F821
        out_trials=snakemake.output.trials,  # noqa: F821
        out_channels=snakemake.output.channels,  # noqa: F821
        out_info=snakemake.output.info,  # noqa: F821
        out_runs=snakemake.output.runs,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
    log.info("rows per split: %s", trials["split"].value_counts().to_dict())
