"""Rule fmri_compare: MEG vs fMRI retrieval per backbone, and reconstruction metrics (tables and figures)."""

from megdecode.logs import job_logging
from megdecode.reporting.modalities import write_comparison, write_reconstruction_comparison

with job_logging(snakemake) as log:  # noqa: F821
    cmp = snakemake.params.comparison  # noqa: F821
    outputs = dict(snakemake.output.items())  # noqa: F821
    table = write_comparison(
        meg_files=snakemake.input.meg,  # noqa: F821
        fmri_files=snakemake.input.fmri,  # noqa: F821
        feature_levels=snakemake.params.feature_levels,  # noqa: F821
        outputs=outputs,
        test_set=cmp["test_set"],
        metric=cmp["metric"],
        dpi=snakemake.params.dpi,  # noqa: F821
        ceiling_files=snakemake.input.ceiling,  # noqa: F821
    )
    shown = table.query("test_set == @cmp['test_set'] and metric == @cmp['metric'] and subject == 'mean'")
    log.info("retrieval:\n%s", shown.to_string(index=False))
    if "recon_tsv" in outputs:
        recon = write_reconstruction_comparison(
            meg_files=snakemake.input.meg_recon,  # noqa: F821
            fmri_files=snakemake.input.fmri_recon,  # noqa: F821
            feature_levels=snakemake.params.feature_levels,  # noqa: F821
            decoders=snakemake.params.decoders,  # noqa: F821
            outputs=outputs,
            dpi=snakemake.params.dpi,  # noqa: F821
            n_bootstrap=snakemake.params.bootstrap["n_bootstrap"],  # noqa: F821
            ci_level=snakemake.params.bootstrap["ci_level"],  # noqa: F821
            seed=snakemake.params.seed,  # noqa: F821
        )
        log.info("reconstruction:\n%s", recon.query("subject == 'mean'").to_string(index=False))
