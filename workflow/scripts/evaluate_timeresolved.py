"""Time-resolved ridge decoding and listed-window brain modules of one subject (evaluate_timeresolved)."""

from pathlib import Path

from megdecode.evaluation.timeresolved import timeresolved_subject
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    timeresolved_subject(
        preprocessed_dir=Path(snakemake.input.meg).parent,
        latent_dirs=snakemake.params.latent_dirs,
        outputs=snakemake.params.outputs,
        subject=snakemake.wildcards.subject,
        cfg=snakemake.params.cfg,
        seed=snakemake.params.seed,
        brain_window_files=snakemake.params.brain_window_files,
    )
