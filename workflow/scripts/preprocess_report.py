"""Snakemake script: one subject's preprocessing QC report (see megdecode.preprocessing.qc)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.preprocessing.qc import build_report

    build_report(
        epochs_paths=list(snakemake.input.epochs),  # noqa: F821
        psd_paths=list(snakemake.input.psd),  # noqa: F821
        runs_path=snakemake.input.runs,  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        out_html=snakemake.output[0],  # noqa: F821
    )
    log.info("report written: %s", snakemake.output[0])  # noqa: F821
