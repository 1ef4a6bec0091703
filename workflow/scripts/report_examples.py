"""Top-5 retrieved images and spatial attention maps (rule report_examples)."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.reporting.examples import write_examples

with job_logging(snakemake) as log:  # noqa: F821
    inp = snakemake.input  # noqa: F821
    write_examples(
        predictions=inp.predictions,
        latent_dir=Path(inp.latents[0]).parent,
        stimuli_table=inp.stimuli,
        images_root=snakemake.params.images_root,  # noqa: F821
        model_weights=inp.get("weights"),
        channels=inp.channels[0],
        outputs={"top5": snakemake.output.top5, "attention": snakemake.output.attention},  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
    )
