"""Rule train_brain_window: the brain module on epochs cropped to one listed window."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.training import BrainOutputs, derive_seed, train_brain_module

    wc = snakemake.wildcards  # noqa: F821
    out = snakemake.output  # noqa: F821
    train_brain_module(
        {wc.subject: Path(snakemake.input[f"meg_{wc.subject}"]).parent},  # noqa: F821
        Path(snakemake.input.latents).parent,  # noqa: F821
        BrainOutputs(
            Path(out.model),
            Path(out.history),
            {wc.subject: Path(out.predictions)},
            Path(snakemake.params.checkpoint),  # noqa: F821
        ),
        snakemake.params.brain,  # noqa: F821
        snakemake.params.training,  # noqa: F821
        seed=derive_seed(snakemake.params.master_seed, "window", wc.window, wc.backbone, wc.subject),  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        crop=tuple(snakemake.params.window),  # noqa: F821
    )
