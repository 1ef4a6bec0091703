"""Rule build_random_backbone: a small randomly initialised model saved with save_pretrained."""

from megdecode.latents import build_random_backbone
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    build_random_backbone(
        name=snakemake.wildcards.backbone,
        spec=snakemake.params.cfg,
        out_dir=snakemake.output[0],
        seed=snakemake.params.seed,
    )
