"""Snakemake script: replay one subject's test runs through the online decoder (megdecode.online.replay)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.online.replay import ReplaySettings, replay_subject

    inp = snakemake.input
    summary = replay_subject(
        raw_paths=list(inp.raw),
        events_paths=list(inp.events),
        stimuli_path=inp.stimuli,
        images_root=snakemake.params.images,
        model_path=inp.model,
        preprocessed_dir=Path(inp.info).parent,
        predictions_path=inp.predictions,
        latents_dir=Path(inp.latents).parent,
        subject=snakemake.wildcards.subject,
        settings=ReplaySettings.from_config(snakemake.params.cfg),
        bids_cfg=snakemake.params.bids,
        out_dir=Path(snakemake.output.trials).parent,
        ground_truth=inp.ground_truth[0] if len(inp.ground_truth) else None,
    )
    log.info("summary:\n%s", summary.to_string(index=False))
