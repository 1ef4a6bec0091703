"""Snakemake script: preprocess one run (see megdecode.preprocessing.run)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.preprocessing.run import preprocess_run

    table = preprocess_run(
        raw_path=snakemake.input.raw,
        events_path=snakemake.input.events,
        stimuli_path=snakemake.input.stimuli,
        epochs_out=snakemake.output.epochs,
        qc_out=snakemake.output.qc,
        psd_out=snakemake.output.psd,
        cfg=snakemake.params.cfg,
        threads=snakemake.threads,
    )
    log.info("run QC:\n%s", table.T.to_string())
