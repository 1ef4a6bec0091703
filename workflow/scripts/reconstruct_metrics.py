"""Rule reconstruction_metrics: per-image metrics of one (generator, subject), best/median/worst figure."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.reconstruction import score_subject

with job_logging(snakemake) as log:  # noqa: F821
    inputs = dict(snakemake.input.items())  # noqa: F821
    score_subject(
        recon_npz=inputs["npz"],
        recon_images=inputs["images"],
        stimuli_tsv=inputs["table"],
        images_root=snakemake.params.images_root,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        backbones=snakemake.params.backbones,  # noqa: F821
        latents_dirs={
            k[len("latents_") :]: str(Path(v).parent) for k, v in inputs.items() if k.startswith("latents_")
        },
        weights_dirs={k[len("weights_") :]: v for k, v in inputs.items() if k.startswith("weights_")},
        out_metrics=snakemake.output.metrics,  # noqa: F821
        out_figure=snakemake.output.figure,  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        generator=snakemake.wildcards.generator,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
