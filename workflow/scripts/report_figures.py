"""Retrieval bars, per-subject panels and time courses (rule report_figures)."""

from megdecode.logs import job_logging
from megdecode.reporting.figures import write_figures

with job_logging(snakemake) as log:  # noqa: F821
    out = snakemake.output  # noqa: F821
    write_figures(
        long_table=snakemake.input.long,  # noqa: F821
        outputs={"retrieval": out.retrieval, "subjects": out.subjects, "timecourses": out.timecourses},
        cfg=snakemake.params.cfg,  # noqa: F821
        ground_truth=snakemake.input.truth[0] if snakemake.input.truth else None,  # noqa: F821
        image_offset=snakemake.params.image_offset,  # noqa: F821
    )
