"""Rule fmri_train_mlp: the voxel MLP (CLIP + MSE, the brain module's loop) per (backbone, subject)."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.seeds import derive_seed

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.training.fmri_mlp import train_fmri_mlp

    wc = snakemake.wildcards  # noqa: F821
    train_fmri_mlp(
        Path(snakemake.input.betas).parent,  # noqa: F821
        Path(snakemake.input.latents).parent,  # noqa: F821
        snakemake.output.predictions,  # noqa: F821
        snakemake.output.history,  # noqa: F821
        snakemake.params.mlp,  # noqa: F821
        snakemake.params.training,  # noqa: F821
        seed=derive_seed(int(snakemake.params.master_seed), "fmri_mlp", wc.backbone, wc.subject),  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
