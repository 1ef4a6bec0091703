"""Rule bids_run: convert one sourcedata run to BIDS (megdecode.bids.convert_run)."""

from megdecode.bids import BidsParams, convert_run
from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    w, p = snakemake.wildcards, snakemake.params
    convert_run(
        raw_fif=snakemake.input.raw,
        log_tsv=snakemake.input.log,
        bids_root=p.bids_root,
        subject=w.subject,
        session=w.session,
        run=w.run,
        task=p.task,
        params=BidsParams.from_config(p.cfg),
        ground_truth_json=snakemake.input.ground_truth,
    )
