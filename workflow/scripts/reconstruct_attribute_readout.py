"""Rule attribute_readout: fit the attribute readout on training images and report its held-out accuracy."""

from megdecode.logs import job_logging
from megdecode.reconstruction.attribute_readout import fit_and_write

with job_logging(snakemake) as log:
    fit_and_write(
        stimuli_tsv=snakemake.input.table,
        images_root=snakemake.params.images_root,
        cfg=snakemake.params.cfg,
        image_px=snakemake.params.image_px,
        seed=snakemake.params.seed,
        out_model=snakemake.output.model,
        out_accuracy=snakemake.output.accuracy,
    )
