"""Rule reconstruct: one subject's predicted latents -> images of one generator."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.reconstruction import reconstruct_subject

with job_logging(snakemake) as log:  # noqa: F821
    inputs = dict(snakemake.input.items())  # noqa: F821
    reconstruct_subject(
        generator=snakemake.wildcards.generator,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        predictions={k[len("pred_") :]: v for k, v in inputs.items() if k.startswith("pred_")},
        latents_dirs={
            k[len("latents_") :]: str(Path(v).parent) for k, v in inputs.items() if k.startswith("latents_")
        },
        stimuli_tsv=inputs["table"],
        images_root=snakemake.params.images_root,  # noqa: F821
        out_npz=snakemake.output.npz,  # noqa: F821
        out_images=snakemake.output.images,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        decoder_model=inputs.get("decoder_model"),
        decoder_meta=inputs.get("decoder_meta"),
    )
