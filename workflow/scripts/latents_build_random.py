"""Rule build_random_backbone: a small randomly initialised model saved with save_pretrained."""

from megdecode.latents import build_random_backbone
from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    build_random_backbone(
        name=snakemake.wildcards.backbone,  # noqa: F821
        spec=snakemake.params.cfg,  # noqa: F821
        out_dir=snakemake.output[0],  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
