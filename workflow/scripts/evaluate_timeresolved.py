"""Time-resolved ridge decoding and listed-window brain modules of one subject (evaluate_timeresolved)."""

from pathlib import Path

from megdecode.evaluation.timeresolved import timeresolved_subject
from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    timeresolved_subject(
        preprocessed_dir=Path(snakemake.input.meg).parent,  # noqa: F821
        latent_dirs=snakemake.params.latent_dirs,  # noqa: F821
        outputs=snakemake.params.outputs,  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        brain_window_files=snakemake.params.brain_window_files,  # noqa: F821
    )
