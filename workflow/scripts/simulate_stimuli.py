"""Rule simulate_stimuli: render the stimulus images, write stimuli.tsv and ground_truth.json."""

from megdecode.logs import job_logging
from megdecode.simulate import simulate_stimuli

with job_logging(snakemake) as log:
    simulate_stimuli(
        table_path=snakemake.output.table,
        images_dir=snakemake.output.images,
        ground_truth_path=snakemake.output.truth,
        cfg=snakemake.params.cfg,
        seed=snakemake.params.seed,
    )
