"""Rule fmri_train_mlp: the voxel MLP (CLIP + MSE, the brain module's loop) per (backbone, subject)."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.seeds import derive_seed

with job_logging(snakemake) as log:
    from megdecode.training.fmri_mlp import train_fmri_mlp

    wc = snakemake.wildcards
    train_fmri_mlp(
        Path(snakemake.input.betas).parent,
        Path(snakemake.input.latents).parent,
        snakemake.output.predictions,
        snakemake.output.history,
        snakemake.params.mlp,
        snakemake.params.training,
        seed=derive_seed(int(snakemake.params.master_seed), "fmri_mlp", wc.backbone, wc.subject),
        threads=snakemake.threads,
    )
