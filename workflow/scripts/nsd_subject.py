"""Rule nsd_subject: one NSD subject's single-trial betas (ROI voxels, % signal change), trials and voxels."""

from pathlib import Path

from megdecode.datasets.nsd import write_study_subject
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    p = snakemake.params
    write_study_subject(
        section=p.cfg,
        subject=snakemake.wildcards.subject,
        sessions=p.sessions,
        seed=p.seed,
        out_dir=Path(snakemake.output.betas).parent,
    )
