"""Rule things_eeg2_simulate_images: the simulated THINGS-EEG2 image set (megdecode.simulate.things_eeg2)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.simulate.things_eeg2 import write_image_set

    write_image_set(
        Path(snakemake.output.metadata).parent,
        snakemake.params.simulation,
        snakemake.params.seed,
    )
