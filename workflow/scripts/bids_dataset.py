"""Rule bids_dataset: dataset-level BIDS files, once all runs exist (megdecode.bids.write_dataset_files)."""

from megdecode.bids import DatasetDescription, write_dataset_files
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    p = snakemake.params
    write_dataset_files(
        bids_root=p.bids_root,
        runs=[tuple(r) for r in p.runs],
        task=p.task,
        description=DatasetDescription.from_config(p.cfg),
    )
