"""Rule reconstruct: one subject's predicted latents -> images of one generator."""

from pathlib import Path

from megdecode.logs import job_logging
from megdecode.reconstruction import reconstruct_subject

with job_logging(snakemake) as log:
    inputs = dict(snakemake.input.items())
    reconstruct_subject(
        generator=snakemake.wildcards.generator,
        cfg=snakemake.params.cfg,
        predictions={k[len("pred_") :]: v for k, v in inputs.items() if k.startswith("pred_")},
        latents_dirs={
            k[len("latents_") :]: str(Path(v).parent) for k, v in inputs.items() if k.startswith("latents_")
        },
        stimuli_tsv=inputs["table"],
        images_root=snakemake.params.images_root,
        out_npz=snakemake.output.npz,
        out_images=snakemake.output.images,
        seed=snakemake.params.seed,
        subject=snakemake.wildcards.subject,
        decoder_model=inputs.get("decoder_model"),
        decoder_meta=inputs.get("decoder_meta"),
    )
