"""Retrieval of every (model, backbone, subject) (rule evaluate_retrieval)."""

from megdecode.evaluation.retrieval import evaluate_all
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    evaluate_all(
        jobs=snakemake.params.jobs,
        cfg=snakemake.params.cfg,
        seed=snakemake.params.seed,
    )
