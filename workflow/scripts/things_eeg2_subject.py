"""Rule things_eeg2_subject: one subject's recipe partitions as the decoders' input (preprocessed folder)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.preprocessing.eeg_decoding import write_study_subject

    write_study_subject(
        section=snakemake.params.cfg,
        preprocessing=snakemake.params.scaling,
        validation=snakemake.params.validation,
        seed=snakemake.params.seed,
        subject=snakemake.wildcards.subject,
        inputs=dict(snakemake.input.items()),
        out_dir=str(Path(snakemake.output.meg).parent),
    )
