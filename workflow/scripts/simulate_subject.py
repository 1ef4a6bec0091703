"""Rule simulate_subject: one subject's raw FIF recordings and stimulus logs, for every session and run."""

from megdecode.logs import job_logging
from megdecode.simulate import simulate_subject

with job_logging(snakemake) as log:  # noqa: F821
    simulate_subject(
        stimuli_table=snakemake.input.table,  # noqa: F821
        ground_truth=snakemake.input.truth,  # noqa: F821
        raw_paths=list(snakemake.output.raws),  # noqa: F821
        log_paths=list(snakemake.output.logs),  # noqa: F821
        subject_truth_path=snakemake.output.truth,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        subject=snakemake.wildcards.subject,  # noqa: F821
        sessions=snakemake.params.sessions,  # noqa: F821
        runs=snakemake.params.runs,  # noqa: F821
    )
