"""Snakemake script: preprocess one run (see megdecode.preprocessing.run)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.preprocessing.run import preprocess_run

    table = preprocess_run(
        raw_path=snakemake.input.raw,  # noqa: F821
        events_path=snakemake.input.events,  # noqa: F821
        stimuli_path=snakemake.input.stimuli,  # noqa: F821
        epochs_out=snakemake.output.epochs,  # noqa: F821
        qc_out=snakemake.output.qc,  # noqa: F821
        psd_out=snakemake.output.psd,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
    log.info("run QC:\n%s", table.T.to_string())
