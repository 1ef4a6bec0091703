# Input functions and constants of rules/reconstruct.smk (kept apart: a rule file holds rules only).
RECON_CFG = config["reconstruction"]
RECON_BACKBONES_CFG = config.get("backbones", {})


def recon_trained_backbones():
    """Backbones the chosen model (brain: training.backbones, ridge: ridge.backbones; null = all) covers."""
    section = "training" if RECON_CFG["model"] == "brain" else "ridge"
    chosen = config.get(section, {}).get("backbones")
    return [b for b in RECON_BACKBONES_CFG if chosen is None or b in chosen]


RECON_BACKBONE = RECON_CFG["backbone"] or next(iter(recon_trained_backbones()), "none")
RECON_SEED = RECON_CFG["brain_seed"]
if RECON_SEED is None:
    RECON_SEED = (config.get("training", {}).get("seeds") or [config["seed"]])[0]
RECON_NON_IMAGE_KINDS = ("attributes", "huggingface_text")
RECON_DIR = f"{RECONSTRUCTION}/{{generator}}/sub-{{subject}}"
DECODER_DIR = f"{R}/generators/decoder/{{backbone}}"
DECODER_MODEL = f"{DECODER_DIR}/model.safetensors"
DECODER_META = f"{DECODER_DIR}/decoder.json"
LATENTS_NPY = f"{LATENTS}/latents.npy"
LATENTS_JSON = f"{LATENTS}/latents.json"


def recon_generator_backbones(generator):
    """Backbones whose predictions one generator consumes."""
    if generator == "versatile_diffusion":
        vd = RECON_CFG["versatile_diffusion"]
        return [
            b
            for b in (vd["vision_backbone"], vd["text_backbone"], vd["autokl_backbone"])
            if b
        ]
    return [RECON_BACKBONE]


def recon_predictions(backbone, subject):
    """predictions.npz of the configured model (brain module seed or ridge) for one backbone and subject."""
    if RECON_CFG["model"] == "ridge":
        return f"{MODELS}/ridge/{backbone}/sub-{subject}/predictions.npz"
    return f"{MODELS}/brain/{backbone}/sub-{subject}/seed-{RECON_SEED}/predictions.npz"


def recon_inputs(wildcards):
    backbones = recon_generator_backbones(wildcards.generator)
    inputs = {"table": STIMULI_TABLE}
    for b in backbones:
        inputs[f"pred_{b}"] = recon_predictions(b, wildcards.subject)
        inputs[f"latents_{b}"] = LATENTS_JSON.format(backbone=b)
    if wildcards.generator == "decoder":
        inputs["decoder_model"] = DECODER_MODEL.format(backbone=backbones[0])
        inputs["decoder_meta"] = DECODER_META.format(backbone=backbones[0])
    if wildcards.generator == "retrieval":
        inputs["gallery_latents"] = LATENTS_NPY.format(backbone=backbones[0])
    return inputs


def recon_params(wildcards):
    """Only the config slice this generator depends on."""
    keys = {
        "decoder": ["backbone"],
        "retrieval": ["backbone", "retrieval"],
        "versatile_diffusion": ["versatile_diffusion"],
    }[wildcards.generator]
    return {
        "split": RECON_CFG["split"],
        "model": RECON_CFG["model"],
        "backbone": RECON_BACKBONE,
        **{k: RECON_CFG[k] for k in keys if k != "backbone"},
    }


def recon_feature_backbones():
    """Backbones computed from pixels that score reconstructions (two-way identification, distance)."""
    chosen = RECON_CFG["metrics"]["feature_backbones"]
    return [
        b
        for b, spec in RECON_BACKBONES_CFG.items()
        if (chosen is None or b in chosen)
        and spec.get("kind") not in RECON_NON_IMAGE_KINDS
    ]


def recon_metrics_inputs(wildcards):
    """Every subject's reconstructions of one generator, the stimuli, and the feature backbones' files."""
    inputs = {
        "npz": expand(
            f"{RECON_DIR}/reconstructions.npz",
            generator=wildcards.generator,
            subject=SUBJECTS,
        ),
        "images": expand(
            f"{RECON_DIR}/images", generator=wildcards.generator, subject=SUBJECTS
        ),
        "table": STIMULI_TABLE,
    }
    for b in recon_feature_backbones():
        inputs[f"latents_{b}"] = LATENTS_NPY.format(backbone=b)
        if b in RANDOM_BACKBONES:
            inputs[f"weights_{b}"] = PRETRAINED.format(backbone=b)
    return inputs
