"""Rules train_brain, train_brain_window and train_brain_shared: one brain module per job.

``params.subjects`` are the subjects it trains on (one, or all for the shared model), in the order of
``output.predictions``; ``params.seed_parts`` are the wildcard parts of the seed; ``params.crop`` is
``[tmin, tmax]`` of the listed window or None for the full epoch.
"""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.seeds import derive_seed
    from megdecode.training.brain import BrainOutputs, train_brain_module

    params = snakemake.params
    out = snakemake.output
    subjects = list(params.subjects)
    predictions = [out.predictions] if isinstance(out.predictions, str) else list(out.predictions)
    train_brain_module(
        {s: Path(snakemake.input[f"meg_{s}"]).parent for s in subjects},
        Path(snakemake.input.latents).parent,
        BrainOutputs(
            Path(out.model),
            Path(out.history),
            {s: Path(p) for s, p in zip(subjects, predictions, strict=True)},
            Path(params.checkpoint),
        ),
        params.brain,
        params.training,
        seed=derive_seed(params.master_seed, *params.seed_parts),
        threads=snakemake.threads,
        crop=None if params.crop is None else tuple(params.crop),
    )
