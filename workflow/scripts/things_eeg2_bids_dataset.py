"""Rule things_eeg2_bids_dataset: the BIDS-EEG tree's dataset-level files, once every session is converted."""

from pathlib import Path

from megdecode.bids_eeg import write_dataset_files
from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821 - injected by snakemake
    p = snakemake.params
    write_dataset_files(Path(snakemake.output.description).parent, p.cfg["subjects"])
