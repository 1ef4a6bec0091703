# Stage: realtime (docs/realtime.md).
# Per (backbone, subject, seed): the online model (everything `megdecode online` needs, in one folder), then
# the subject's test runs replayed from the BIDS recordings through the online decoder built from it, chunk
# by chunk, as fast as possible or paced at the recording's rate.
# Which (backbone, seed): PLAN.realtime (realtime.backbone / realtime.seed, else the first trained ones).
include: "realtime_inputs.smk"


rule realtime_model:
    """One folder with the model, scaler, channels, onsets and gallery of one subject, for live decoding."""
    input:
        unpack(realtime_model_inputs),
    output:
        directory(RT_ONLINE_MODEL),
    log:
        L.log("realtime_model", "{backbone}/sub-{subject}_seed-{seed}"),
    benchmark:
        L.benchmark("realtime_model", "{backbone}/sub-{subject}_seed-{seed}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        gallery=config["realtime"]["gallery"],
        onsets={
            "stim_channel": config["bids"]["stim_channel"],
            "trigger_codes": config["bids"]["trigger_codes"],
            "photodiode_channel": config["bids"]["photodiode_channel"],
            "photodiode_max_lag_s": config["bids"]["photodiode_max_lag_s"],
            "photodiode_threshold": config["bids"]["photodiode_threshold"],
        },
    script:
        "../workflow/scripts/realtime_model.py"


rule realtime_replay:
    """Replay a subject's test runs through the online decoder: per-trial TSV, summary, figure."""
    input:
        unpack(realtime_inputs),
    output:
        trials=L.realtime_file("trials.tsv"),
        summary=L.realtime_file("summary.tsv"),
        figure=report(
            L.realtime_file("replay.png"),
            category="Online decoding",
            labels={
                "subject": "{subject}",
                "backbone": "{backbone}",
                "figure": "replay",
            },
        ),
    log:
        # the job's log, then every trial as it was decoded (kept when the job fails)
        main=L.log("realtime_replay", "{backbone}/sub-{subject}_seed-{seed}"),
        trials=L.log(
            "realtime_replay", "{backbone}/sub-{subject}_seed-{seed}"
        ).removesuffix(".log")
        + ".trials.tsv",
    benchmark:
        L.benchmark("realtime_replay", "{backbone}/sub-{subject}_seed-{seed}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=config["realtime"],
        images=STIMULI_IMAGES,
    script:
        "../workflow/scripts/realtime_replay.py"


if PLAN.realtime is not None:
    ALL_TARGETS.extend(
        expand(
            [L.realtime_file(name) for name in ("online_model", *RT_FILES)],
            backbone=PLAN.realtime[0],
            subject=SUBJECTS,
            seed=PLAN.realtime[1],
        )
    )
