# Stage: realtime (docs/realtime.md).
# Per (backbone, subject, seed): the subject's test runs are replayed from the BIDS recordings through the
# online decoder (megdecode.online), chunk by chunk, as fast as possible or paced at the recording's rate.
# Which (backbone, seed): PLAN.realtime (realtime.backbone / realtime.seed, else the first trained ones).
include: "realtime_inputs.smk"


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
        L.log("realtime_replay", "{backbone}/sub-{subject}_seed-{seed}"),
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
        bids={
            "stim_channel": config["bids"]["stim_channel"],
            "trigger_codes": config["bids"]["trigger_codes"],
            "photodiode_channel": config["bids"]["photodiode_channel"],
            "photodiode_max_lag_s": config["bids"]["photodiode_max_lag_s"],
            "photodiode_threshold": config["bids"]["photodiode_threshold"],
        },
        images=STIMULI_IMAGES,
    script:
        "../workflow/scripts/realtime_replay.py"


if PLAN.realtime is not None:
    ALL_TARGETS.extend(
        expand(
            [L.realtime_file(name) for name in RT_FILES],
            backbone=PLAN.realtime[0],
            subject=SUBJECTS,
            seed=PLAN.realtime[1],
        )
    )
