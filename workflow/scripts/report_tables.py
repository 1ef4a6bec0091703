"""Long results table and Table 1 (rule report_tables)."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.reporting.tables import write_tables

with job_logging(snakemake) as log:  # noqa: F821
    write_tables(
        retrieval_files=list(snakemake.input.retrieval),  # noqa: F821
        timeresolved_files=list(snakemake.input.timeresolved),  # noqa: F821
        latent_meta={Path(p).parent.name: p for p in snakemake.input.meta},  # noqa: F821
        out_long=snakemake.output.long,  # noqa: F821
        out_md=snakemake.output.md,  # noqa: F821
        out_tex=snakemake.output.tex,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
    )
