"""Rule train_decoder: latent -> image decoder for one backbone, trained on train-concept stimulus images."""

from megdecode.logs import job_logging
from megdecode.reconstruction.decoder import train_decoder

with job_logging(snakemake) as log:  # noqa: F821
    train_decoder(
        latent_dir=snakemake.input.latents.rsplit("/", 1)[0],  # noqa: F821
        stimuli_tsv=snakemake.input.table,  # noqa: F821
        images_root=snakemake.params.images_root,  # noqa: F821
        out_model=snakemake.output.model,  # noqa: F821
        out_meta=snakemake.output.meta,  # noqa: F821
        out_history=snakemake.output.history,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        backbone=snakemake.wildcards.backbone,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
