"""Rule stimuli_table (real data): STIMULI_TABLE from the runs' events.tsv and the user's image table."""

from megdecode.datasets.things import study_param, write_stimuli_table
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    p = snakemake.params
    write_stimuli_table(
        bids_root=study_param(p, "bids_root"),
        image_table=study_param(p, "image_table"),
        subjects=study_param(p, "subjects"),
        sessions=study_param(p, "sessions"),
        runs=study_param(p, "runs"),
        task=study_param(p, "task"),
        out_tsv=snakemake.output[0],
    )
