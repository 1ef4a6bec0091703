"""Rule attribute_readout: fit the attribute readout on training images and report its held-out accuracy."""

from megdecode.logs import job_logging
from megdecode.reconstruction.attribute_readout import fit_and_write

with job_logging(snakemake) as log:  # noqa: F821
    fit_and_write(
        stimuli_tsv=snakemake.input.table,  # noqa: F821
        images_root=snakemake.params.images_root,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        image_px=snakemake.params.image_px,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        out_model=snakemake.output.model,  # noqa: F821
        out_accuracy=snakemake.output.accuracy,  # noqa: F821
    )
