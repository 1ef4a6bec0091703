"""Rule simulate_subject: one subject's raw FIF recordings and stimulus logs, for every session and run."""

from megdecode.logs import job_logging
from megdecode.simulate import simulate_subject

with job_logging(snakemake) as log:
    simulate_subject(
        stimuli_table=snakemake.input.table,
        ground_truth=snakemake.input.truth,
        raw_paths=list(snakemake.output.raws),
        log_paths=list(snakemake.output.logs),
        subject_truth_path=snakemake.output.truth,
        cfg=snakemake.params.cfg,
        seed=snakemake.params.seed,
        subject=snakemake.wildcards.subject,
        sessions=snakemake.params.sessions,
        runs=snakemake.params.runs,
    )
