"""Rule things_eeg2_bids_dataset: the BIDS-EEG tree's dataset-level files, once every session is converted."""

from megdecode.bids_eeg import write_dataset_files
from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821 - injected by snakemake
    p = snakemake.params  # noqa: F821
    write_dataset_files(p.bids_root, p.cfg["subjects"])
