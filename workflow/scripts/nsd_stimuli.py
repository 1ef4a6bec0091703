"""Rule nsd_stimuli: the NSD study's stimuli table and its images (PNG) from nsd_stimuli.hdf5."""

from megdecode.datasets.nsd import write_study_stimuli
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    p = snakemake.params
    write_study_stimuli(
        section=p.cfg,
        subjects=p.subjects,
        sessions=p.sessions,
        seed=p.seed,
        table_path=snakemake.output.table,
        images_dir=snakemake.output.images,
    )
