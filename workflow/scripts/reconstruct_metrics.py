"""Rule reconstruction_metrics: per-image metrics and best/median/worst figures of one generator."""

from megdecode.logs import job_logging
from megdecode.reconstruction import score_subjects

with job_logging(snakemake) as log:
    inputs = dict(snakemake.input.items())
    score_subjects(
        generator=snakemake.wildcards.generator,
        subjects=snakemake.params.subjects,
        recon_npzs=list(inputs["npz"]),
        recon_images=list(inputs["images"]),
        out_metrics=list(snakemake.output.metrics),
        out_figures=list(snakemake.output.figures),
        stimuli_tsv=inputs["table"],
        images_root=snakemake.params.images_root,
        cfg=snakemake.params.cfg,
        backbones=snakemake.params.backbones,
        weights_dirs={k[len("weights_") :]: v for k, v in inputs.items() if k.startswith("weights_")},
        threads=snakemake.threads,
        readout_model=inputs.get("readout_model"),
        readout_accuracy=inputs.get("readout_accuracy"),
    )
