"""Rule simulate_stimuli: render the stimulus images, write stimuli.tsv and ground_truth.json."""

from megdecode.logs import job_logging
from megdecode.simulate import simulate_stimuli

with job_logging(snakemake) as log:  # noqa: F821
    simulate_stimuli(
        table_path=snakemake.output.table,  # noqa: F821
        images_dir=snakemake.output.images,  # noqa: F821
        ground_truth_path=snakemake.output.truth,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
