"""Snakemake script: write one subject's online model folder (megdecode.artifacts.online_model)."""

from pathlib import Path

from megdecode.logs import job_logging

with job_logging(snakemake) as log:
    from megdecode.artifacts.online_model import write_online_model
    from megdecode.artifacts.sourcedata import read_ground_truth

    inp, params, wc = snakemake.input, snakemake.params, snakemake.wildcards
    onsets = dict(params.onsets)
    if onsets["trigger_codes"] is None and len(inp.ground_truth):  # the simulator's codes
        onsets["trigger_codes"] = read_ground_truth(inp.ground_truth[0]).get("trigger_codes")
    write_online_model(
        snakemake.output[0],
        model_path=inp.model,
        preprocessed_dir=Path(inp.info).parent,
        predictions_path=inp.predictions,
        latents_dir=Path(inp.latents).parent,
        stimuli_path=inp.stimuli,
        subject=wc.subject,
        backbone=wc.backbone,
        seed=int(wc.seed),
        gallery_split=params.gallery,
        onsets=onsets,
    )
    log.info("online model written to %s", snakemake.output[0])
