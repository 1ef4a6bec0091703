# Input functions and constants of rules/fmri.smk (kept apart: a rule file holds rules only).
FMRI_CFG = config["fmri"]
FMRI_RECON_NPZ = L.fmri_reconstruction_file("reconstructions.npz")
FMRI_RECON_IMAGES = L.fmri_reconstruction_file("images")
FMRI_RECON_METRICS = L.fmri_reconstruction_file("metrics.tsv")
FMRI_RECON_EXAMPLES = L.fmri_reconstruction_file("best_median_worst.png")
# generators that run on fMRI predictions: the configured ones except the GPU-sized Versatile Diffusion
FMRI_GENERATORS = [
    g for g in config["reconstruction"]["generators"] if g in ("decoder", "retrieval")
]


def fmri_decoder_inputs(wc):
    """One fMRI subject's files (betas, trials, voxels, info) and the backbone's latents."""
    return {
        **{k: v.format(subject=wc.subject) for k, v in FMRI_SUBJECT_FILES.items()},
        **{
            k: LATENT_FILES[k].format(backbone=wc.backbone)
            for k in ("latents", "index")
        },
    }


def fmri_recon_inputs(wc):
    """As recon_inputs (rules/reconstruct_inputs.smk), with the fMRI decoder's predictions."""
    b = PLAN.recon_backbone
    inputs = {
        "table": STIMULI_TABLE,
        f"pred_{b}": L.fmri_predictions(PLAN.fmri.recon_model).format(
            backbone=b, subject=wc.subject
        ),
        f"latents_{b}": LATENT_FILES["meta"].format(backbone=b),
    }
    if wc.generator == "decoder":
        inputs["decoder_model"] = DECODER_MODEL.format(backbone=b)
        inputs["decoder_meta"] = DECODER_META.format(backbone=b)
    if wc.generator == "retrieval":
        inputs["gallery_latents"] = LATENT_FILES["latents"].format(backbone=b)
    return inputs


def fmri_recon_params(wc):
    """The reconstruction slice this generator depends on (as recon_params), for the fMRI decoder."""
    recon = config["reconstruction"]
    return {
        "split": recon["split"],
        "model": FMRI_CFG["reconstruction_model"],
        "backbone": PLAN.recon_backbone,
        **({"retrieval": recon["retrieval"]} if wc.generator == "retrieval" else {}),
        **(
            {"clip_predictions": recon["clip_predictions"]}
            if wc.generator == "decoder"
            else {}
        ),
    }


def fmri_recon_metrics_inputs(wc):
    """Every fMRI subject's reconstructions of one generator, the stimuli, the feature backbones' weights."""
    subjects = PLAN.fmri.subjects
    inputs = {
        "npz": expand(FMRI_RECON_NPZ, generator=wc.generator, subject=subjects),
        "images": expand(FMRI_RECON_IMAGES, generator=wc.generator, subject=subjects),
        "table": STIMULI_TABLE,
    }
    for b in PLAN.recon_feature_backbones:
        if b in RANDOM_BACKBONES:
            inputs[f"weights_{b}"] = PRETRAINED.format(backbone=b)
    return inputs | attribute_readout_inputs()
