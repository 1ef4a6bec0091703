"""Snakemake script: one subject's training inputs and QC report (see megdecode.preprocessing.subject)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.preprocessing.subject import preprocess_subject

    trials = preprocess_subject(
        epochs_paths=list(snakemake.input.epochs),
        qc_paths=list(snakemake.input.qc),
        psd_paths=list(snakemake.input.psd),
        subject=snakemake.wildcards.subject,
        outputs=dict(snakemake.output.items()),
        cfg=snakemake.params.cfg,
        seed=snakemake.params.seed,
        validation=snakemake.params.validation,
    )
    log.info("rows per split: %s", trials["split"].value_counts().to_dict())
