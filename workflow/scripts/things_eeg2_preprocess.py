"""Rule things_eeg2_preprocess: the EEG recipe on one THINGS-EEG2 subject (all sessions, both partitions)."""

from megdecode.logs import job_logging
from megdecode.preprocessing.eeg import write_study_subject

with job_logging(snakemake) as log:  # noqa: F821 - injected by snakemake
    write_study_subject(
        section=snakemake.params.cfg,
        subject=snakemake.wildcards.subject,
        outputs={"training": snakemake.output.training, "test": snakemake.output.test},
    )
