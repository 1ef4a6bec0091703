# Input helpers of rules/realtime.smk.
RT_FILES = ("trials.tsv", "summary.tsv", "replay.png")
RT_ONLINE_MODEL = L.realtime_file("online_model")
RT_GROUND_TRUTH = [L.ground_truth] if SIMULATED else []


def realtime_model_inputs(wc):
    """The trained model, its predictions, the subject's preprocessed folder, latents and stimuli."""
    keys = dict(wc.items())
    return {
        "model": L.model_file("brain", "weights").format(**keys),
        "predictions": L.predictions("brain").format(**keys),
        "stimuli": STIMULI_TABLE,
        "ground_truth": RT_GROUND_TRUTH,
        **{
            k: SUBJECT_FILES[k].format(subject=wc.subject)
            for k in ("meg", "trials", "channels", "info")
        },
        **{
            k: LATENT_FILES[k].format(backbone=wc.backbone)
            for k in ("latents", "index")
        },
    }


def realtime_inputs(wc):
    """The subject's runs (raw, events), its online model, the predictions and preprocessed trials."""
    runs = [
        L.bids_input_files(wc.subject, ses, run) for ses in SESSIONS for run in RUNS
    ]
    keys = dict(wc.items())
    return {
        "raw": [r["raw"] for r in runs],
        "events": [r["events"] for r in runs],
        "stimuli": STIMULI_TABLE,
        "online_model": RT_ONLINE_MODEL.format(**keys),
        "predictions": L.predictions("brain").format(**keys),
        "trials": SUBJECT_FILES["trials"].format(subject=wc.subject),
    }
