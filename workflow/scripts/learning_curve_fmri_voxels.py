"""Rule learning_curve_fmri_voxels: one simulated fMRI subject's voxel code for the fMRI learning curve."""

from megdecode.logs import job_logging

with job_logging(snakemake) as log:  # noqa: F821
    from megdecode.learning_curve.fmri import voxel_code_job

    voxel_code_job(
        snakemake.input.stimuli,  # noqa: F821
        snakemake.input.images,  # noqa: F821
        snakemake.wildcards.subject,  # noqa: F821
        snakemake.params.simulation,  # noqa: F821
        int(snakemake.params.seed),  # noqa: F821
        snakemake.output.code,  # noqa: F821
        snakemake.output.truth,  # noqa: F821
    )
    log.info("voxel code of sub-%s written", snakemake.wildcards.subject)  # noqa: F821
