"""Rule train_brain_shared: one brain module shared by all subjects per (backbone, seed)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.training import BrainOutputs, derive_seed, train_brain_module

    wc = snakemake.wildcards  # noqa: F821
    subjects = list(snakemake.params.subjects)  # noqa: F821
    out = snakemake.output  # noqa: F821
    predictions = {
        s: next(Path(p) for p in out.predictions if p.endswith(f"predictions_sub-{s}.npz")) for s in subjects
    }
    train_brain_module(
        {s: Path(snakemake.input[f"meg_{s}"]).parent for s in subjects},  # noqa: F821
        Path(snakemake.input.latents).parent,  # noqa: F821
        BrainOutputs(Path(out.model), Path(out.history), predictions, Path(snakemake.params.checkpoint)),  # noqa: F821
        snakemake.params.brain,  # noqa: F821
        snakemake.params.training,  # noqa: F821
        seed=derive_seed(snakemake.params.master_seed, int(wc.seed), wc.backbone, "shared"),  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
