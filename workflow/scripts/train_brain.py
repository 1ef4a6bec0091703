"""Rules train_brain and train_brain_window: one brain module per (backbone, subject, seed or window).

``params.seed_parts`` are the wildcard parts of the seed; ``params.crop`` is ``[tmin, tmax]`` of the
listed window or None for the full epoch.
"""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.training import BrainOutputs, derive_seed, train_brain_module

    wc = snakemake.wildcards  # noqa: F821
    params = snakemake.params  # noqa: F821
    out = snakemake.output  # noqa: F821
    train_brain_module(
        {wc.subject: Path(snakemake.input[f"meg_{wc.subject}"]).parent},  # noqa: F821
        Path(snakemake.input.latents).parent,  # noqa: F821
        BrainOutputs(
            Path(out.model),
            Path(out.history),
            {wc.subject: Path(out.predictions)},
            Path(params.checkpoint),
        ),
        params.brain,
        params.training,
        seed=derive_seed(params.master_seed, *params.seed_parts),
        threads=snakemake.threads,  # noqa: F821
        crop=None if params.crop is None else tuple(params.crop),
    )
