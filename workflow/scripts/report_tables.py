"""Long results table and Table 1 (rule report_tables)."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.reporting.tables import write_tables

with job_logging(snakemake) as log:
    write_tables(
        retrieval_files=list(snakemake.input.retrieval),
        timeresolved_files=list(snakemake.input.timeresolved),
        latent_meta={Path(p).parent.name: p for p in snakemake.input.meta},
        out_long=snakemake.output.long,
        out_md=snakemake.output.md,
        out_tex=snakemake.output.tex,
        cfg=snakemake.params.cfg,
    )
