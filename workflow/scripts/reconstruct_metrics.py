"""Rule reconstruction_metrics: per-image metrics and best/median/worst figures of one generator."""

from megdecode.logs import job_logging
from megdecode.reconstruction import score_subjects

with job_logging(snakemake) as log:  # noqa: F821
    inputs = dict(snakemake.input.items())  # noqa: F821
    score_subjects(
        generator=snakemake.wildcards.generator,  # noqa: F821
        subjects=snakemake.params.subjects,  # noqa: F821
        recon_npzs=list(inputs["npz"]),
        recon_images=list(inputs["images"]),
        out_metrics=list(snakemake.output.metrics),  # noqa: F821
        out_figures=list(snakemake.output.figures),  # noqa: F821
        stimuli_tsv=inputs["table"],
        images_root=snakemake.params.images_root,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        backbones=snakemake.params.backbones,  # noqa: F821
        weights_dirs={k[len("weights_") :]: v for k, v in inputs.items() if k.startswith("weights_")},
        threads=snakemake.threads,  # noqa: F821
        readout_model=inputs.get("readout_model"),
        readout_accuracy=inputs.get("readout_accuracy"),
    )
