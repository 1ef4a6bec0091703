"""Snakemake script: dataset_description.json of the preprocessing derivatives."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.preprocessing.run import write_derivatives_description

    write_derivatives_description(snakemake.output[0], snakemake.params.cfg)
    log.info("wrote %s", snakemake.output[0])
