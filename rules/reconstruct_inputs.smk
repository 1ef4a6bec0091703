# Input functions and constants of rules/reconstruct.smk (kept apart: a rule file holds rules only).
# Which backbones and predictions each generator uses: PLAN (megdecode.plan).
RECON_CFG = config["reconstruction"]
RECON_NPZ = L.reconstruction_file("reconstructions.npz")
RECON_IMAGES = L.reconstruction_file("images")
RECON_METRICS = L.reconstruction_file("metrics.tsv")
RECON_EXAMPLES = L.reconstruction_file("best_median_worst.png")
DECODER_MODEL = L.decoder_file("weights")
DECODER_META = L.decoder_file("meta")


def recon_inputs(wildcards):
    backbones = PLAN.generator_backbones(wildcards.generator)
    inputs = {"table": STIMULI_TABLE}
    for b in backbones:
        inputs[f"pred_{b}"] = PLAN.recon_predictions(L, b, wildcards.subject)
        inputs[f"latents_{b}"] = LATENT_FILES["meta"].format(backbone=b)
    if wildcards.generator == "decoder":
        inputs["decoder_model"] = DECODER_MODEL.format(backbone=backbones[0])
        inputs["decoder_meta"] = DECODER_META.format(backbone=backbones[0])
    if wildcards.generator == "retrieval":
        inputs["gallery_latents"] = LATENT_FILES["latents"].format(
            backbone=backbones[0]
        )
    return inputs


def recon_params(wildcards):
    """Only the config slice this generator depends on."""
    keys = {
        "decoder": ["clip_predictions"],
        "retrieval": ["retrieval"],
        "versatile_diffusion": ["versatile_diffusion"],
    }[wildcards.generator]
    return {
        "split": RECON_CFG["split"],
        "model": RECON_CFG["model"],
        "backbone": PLAN.recon_backbone,
        **{k: RECON_CFG[k] for k in keys},
    }


def recon_metrics_inputs(wildcards):
    """Every subject's reconstructions of one generator, the stimuli, and the feature backbones' weights
    (features are computed from the pixels of both the seen and the reconstructed images).
    """
    inputs = {
        "npz": expand(RECON_NPZ, generator=wildcards.generator, subject=SUBJECTS),
        "images": expand(RECON_IMAGES, generator=wildcards.generator, subject=SUBJECTS),
        "table": STIMULI_TABLE,
    }
    for b in PLAN.recon_feature_backbones:
        if b in RANDOM_BACKBONES:
            inputs[f"weights_{b}"] = PRETRAINED.format(backbone=b)
    return inputs | attribute_readout_inputs()


def attribute_readout_inputs():
    """The attribute readout's model and accuracy table, when it scores reconstructions (MEG and fMRI)."""
    if not PLAN.recon_attribute_readout:
        return {}
    return {
        "readout_model": ATTRIBUTE_READOUT_FILES["model"],
        "readout_accuracy": ATTRIBUTE_READOUT_FILES["accuracy"],
    }
