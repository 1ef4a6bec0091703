"""Top-5 retrieved images and spatial attention maps (rule report_examples)."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.reporting.examples import write_examples

with job_logging(snakemake) as log:
    inp = snakemake.input
    write_examples(
        predictions=inp.predictions,
        latent_dir=Path(inp.latents[0]).parent,
        stimuli_table=inp.stimuli,
        images_root=snakemake.params.images_root,
        model_weights=inp.get("weights"),
        channels=inp.channels[0],
        outputs={"top5": snakemake.output.top5, "attention": snakemake.output.attention},
        cfg=snakemake.params.cfg,
    )
