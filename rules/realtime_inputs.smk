# Input helpers of rules/realtime.smk.
from megdecode.bids_layout import run_files

RT_DIR = L.realtime
RT_ONLINE_MODEL = f"{RT_DIR}/online_model"
RT_GROUND_TRUTH = [L.ground_truth] if SIMULATED else []


def realtime_model_inputs(wc):
    """The trained model, its predictions, the subject's preprocessed folder, latents and stimuli."""
    keys = dict(wc.items())
    return {
        "model": f"{L.model_dir('brain')}/model.safetensors".format(**keys),
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
        run_files(BIDS_ROOT, wc.subject, ses, run, TASK, SIMULATED)
        for ses in SESSIONS
        for run in RUNS
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
