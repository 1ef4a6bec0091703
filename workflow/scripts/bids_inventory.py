"""Rule bids_inventory (real data): one row per configured run of the existing BIDS dataset."""

from megdecode.datasets.things import study_param, write_inventory
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    p = snakemake.params
    write_inventory(
        bids_root=study_param(p, "bids_root"),
        subjects=study_param(p, "subjects"),
        sessions=study_param(p, "sessions"),
        runs=study_param(p, "runs"),
        task=study_param(p, "task"),
        out_tsv=snakemake.output[0],
    )
