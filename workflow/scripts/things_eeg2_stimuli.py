"""Rule things_eeg2_stimuli: the stimuli table of THINGS-EEG2 (megdecode.preprocessing.eeg_decoding)."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.preprocessing.eeg_decoding import write_stimuli_table
    from megdecode.simulate.things_eeg2 import study_attributes

    simulation = snakemake.params.simulation
    table = write_stimuli_table(
        section=snakemake.params.cfg,
        metadata=snakemake.input.metadata,
        out=snakemake.output[0],
        attributes=None if simulation is None else study_attributes(simulation, snakemake.params.seed),
    )
    log.info("%d images (%s)", len(table), table["role"].value_counts().to_dict())
