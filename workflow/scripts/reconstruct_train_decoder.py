"""Rule train_decoder: latent -> image decoder for one backbone, trained on train-concept stimulus images."""

from megdecode.logs import job_logging
from megdecode.reconstruction.decoder import train_decoder

with job_logging(snakemake) as log:
    train_decoder(
        latent_dir=snakemake.input.latents.rsplit("/", 1)[0],
        stimuli_tsv=snakemake.input.table,
        images_root=snakemake.params.images_root,
        out_model=snakemake.output.model,
        out_meta=snakemake.output.meta,
        out_history=snakemake.output.history,
        cfg=snakemake.params.cfg,
        backbone=snakemake.wildcards.backbone,
        seed=snakemake.params.seed,
    )
