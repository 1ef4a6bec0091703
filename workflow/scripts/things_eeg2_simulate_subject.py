"""Rule things_eeg2_simulate_subject: one simulated THINGS-EEG2 subject's raw files (published format)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.simulate.things_eeg2 import write_subject

    section = snakemake.params.cfg
    write_subject(
        root=section["root"],
        section=section,
        simulation=snakemake.params.simulation,
        eeg_simulation=snakemake.params.eeg,
        seed=snakemake.params.seed,
        subject=snakemake.wildcards.subject,
    )
