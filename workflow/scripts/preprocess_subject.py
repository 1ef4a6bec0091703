"""Snakemake script: one subject's training inputs and QC report (see megdecode.preprocessing.subject)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.preprocessing.subject import preprocess_subject

    trials = preprocess_subject(
        epochs_paths=list(snakemake.input.epochs),  # noqa: F821
        qc_paths=list(snakemake.input.qc),  # noqa: F821
        psd_paths=list(snakemake.input.psd),  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        outputs=dict(snakemake.output.items()),  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        validation=snakemake.params.validation,  # noqa: F821
    )
    log.info("rows per split: %s", trials["split"].value_counts().to_dict())
