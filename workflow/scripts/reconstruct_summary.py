"""Rule reconstruction_summary: every (generator, subject) metrics table -> one summary beside the paper's."""

from megdecode.logs import job_logging
from megdecode.reconstruction import summarise

with job_logging(snakemake) as log:
    summarise(
        list(snakemake.input),
        snakemake.output.tsv,
        snakemake.output.md,
        snakemake.output.html,
    )
