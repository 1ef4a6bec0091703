"""Retrieval of every (model, backbone, subject) (rule evaluate_retrieval)."""

from megdecode.evaluation.retrieval import evaluate_all
from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    evaluate_all(
        jobs=snakemake.params.jobs,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
