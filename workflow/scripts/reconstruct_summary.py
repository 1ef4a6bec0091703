"""Rule reconstruction_summary: every (generator, subject) metrics table -> one summary beside the paper's."""

from megdecode.logs import job_logging
from megdecode.reconstruction import summarise

with job_logging(snakemake) as log:  # noqa: F821
    summarise(
        list(snakemake.input),  # noqa: F821
        snakemake.output.tsv,  # noqa: F821
        snakemake.output.md,  # noqa: F821
        snakemake.output.html,  # noqa: F821
    )
