"""Retrieval bars, per-subject panels and time courses (rule report_figures)."""

from megdecode.logs import job_logging
from megdecode.reporting.figures import write_figures

with job_logging(snakemake) as log:
    out = snakemake.output
    write_figures(
        long_table=snakemake.input.long,
        outputs={"retrieval": out.retrieval, "subjects": out.subjects, "timecourses": out.timecourses},
        cfg=snakemake.params.cfg,
        ground_truth=snakemake.input.truth[0] if snakemake.input.truth else None,
        image_offset=snakemake.params.image_offset,
    )
