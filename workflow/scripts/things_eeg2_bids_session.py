"""Rule things_eeg2_bids_session: one THINGS-EEG2 session (training and test partitions) to BIDS-EEG."""

from pathlib import Path

from megdecode.bids_eeg import convert_study_session
from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821 - injected by snakemake
    convert_study_session(
        section=snakemake.params.cfg,
        bids_root=Path(snakemake.output.train_raw).parents[3],  # noqa: F821 - root/sub-X/ses-Y/eeg/file
        subject=snakemake.wildcards.subject,
        session=snakemake.wildcards.session,
    )
