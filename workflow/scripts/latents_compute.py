"""Rule latents: one backbone's latents for every exp/test stimulus."""

from pathlib import Path

from megdecode.latents import compute_latents
from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    compute_latents(
        name=snakemake.wildcards.backbone,  # noqa: F821
        spec=snakemake.params.cfg,  # noqa: F821
        table=snakemake.input.table,  # noqa: F821
        images_root=snakemake.params.images_root,  # noqa: F821
        out_dir=Path(snakemake.output.latents).parent,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        weights_dir=snakemake.input.get("weights"),  # noqa: F821
    )
