"""Snakemake script: replay one subject's test runs through the online decoder (megdecode.online.replay)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.online.replay import ReplayInputs, ReplaySettings, replay_subject

    inp = snakemake.input
    summary = replay_subject(
        ReplayInputs(
            raw_paths=list(inp.raw),
            events_paths=list(inp.events),
            stimuli=inp.stimuli,
            images_root=snakemake.params.images,
            online_model=inp.online_model,
            predictions=inp.predictions,
            preprocessed_trials=inp.trials,
        ),
        settings=ReplaySettings.from_config(snakemake.params.cfg),
        out_dir=Path(snakemake.output.trials).parent,
        trial_log=snakemake.log.trials,
    )
    log.info("summary:\n%s", summary.to_string(index=False))
