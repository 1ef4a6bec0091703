"""Rule fmri_compare: MEG vs fMRI retrieval per backbone, and reconstruction metrics (tables and figures)."""

from megdecode.logs import job_logging
from megdecode.reporting.modalities import write_comparison, write_reconstruction_comparison

with job_logging(snakemake) as log:
    cmp = snakemake.params.comparison
    outputs = dict(snakemake.output.items())
    table = write_comparison(
        meg_files=snakemake.input.meg,
        fmri_files=snakemake.input.fmri,
        feature_levels=snakemake.params.feature_levels,
        outputs=outputs,
        test_set=cmp["test_set"],
        metric=cmp["metric"],
        dpi=snakemake.params.dpi,
        ceiling_files=snakemake.input.ceiling,
    )
    shown = table.query("test_set == @cmp['test_set'] and metric == @cmp['metric'] and subject == 'mean'")
    log.info("retrieval:\n%s", shown.to_string(index=False))
    if "recon_tsv" in outputs:
        recon = write_reconstruction_comparison(
            meg_files=snakemake.input.meg_recon,
            fmri_files=snakemake.input.fmri_recon,
            feature_levels=snakemake.params.feature_levels,
            decoders=snakemake.params.decoders,
            outputs=outputs,
            dpi=snakemake.params.dpi,
            n_bootstrap=snakemake.params.bootstrap["n_bootstrap"],
            ci_level=snakemake.params.bootstrap["ci_level"],
            seed=snakemake.params.seed,
        )
        log.info("reconstruction:\n%s", recon.query("subject == 'mean'").to_string(index=False))
