"""Rule latents: one backbone's latents for every exp/test stimulus."""

from pathlib import Path

from megdecode.latents import compute_latents
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    compute_latents(
        name=snakemake.wildcards.backbone,
        spec=snakemake.params.cfg,
        table=snakemake.input.table,
        images_root=snakemake.params.images_root,
        out_dir=Path(snakemake.output.latents).parent,
        threads=snakemake.threads,
        weights_dir=snakemake.input.get("weights"),
    )
