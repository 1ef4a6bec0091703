"""Rule learning_curve_fmri_voxels: one simulated fMRI subject's voxel code for the fMRI learning curve."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.learning_curve.fmri import voxel_code_job

    voxel_code_job(
        snakemake.input.stimuli,
        snakemake.input.images,
        snakemake.wildcards.subject,
        snakemake.params.simulation,
        int(snakemake.params.seed),
        snakemake.output.code,
        snakemake.output.truth,
    )
    log.info("voxel code of sub-%s written", snakemake.wildcards.subject)
