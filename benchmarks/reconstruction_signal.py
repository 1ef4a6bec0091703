"""Where the reconstructions lose what retrieval finds: each step from predicted latent to image, measured.

Reads a finished run of ``config/fmri-demo.yaml`` (or of the default config: MEG only) and, for the
reconstruction backbone and every subject's ``test_small`` images, prints per modality (MEG brain module, fMRI
``fmri.reconstruction_model``):

1. retrieval top-5 (cosine, standardised latents, the evaluation's code) of the CLIP head and of the MSE head;
2. the MSE head's shrinkage: mean over dimensions of SD(predicted) / SD(true) over the test images;
3. two-way identification in latent space (correlation of predicted vs true latents, the image metrics' rule);
4. the decoder generator's images scored as the pipeline scores them (colour-histogram two-way, PixCorr, SSIM
   at ``reconstruction.metrics.image_size``), fed with (a) the true latents of the seen images (what the
   generator can carry at best), (b) the MSE head as the pipeline feeds it, (c) the MSE head rescaled per
   dimension with the validation predictions' mean and SD to the training latents'
   (:func:`rescale_to_training`),
   (d) the MSE head clipped to the decoder's training-latent range (``reconstruction.clip_predictions``, the
   pipeline's default since this measurement), (e) the CLIP head rescaled like (c);
5. the same at the decoder's own resolution (``reconstruction.decoder.image_size``) instead of the metric's.

Usage: .venv/bin/python benchmarks/reconstruction_signal.py [--config config/fmri-demo.yaml]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def rescale_to_training(preds, head: str, split: str = "test_small", eps: float = 1e-6) -> np.ndarray:
    """``split``'s predictions of ``head`` z-scored per dimension with the validation predictions' mean and SD
    (the training latents have SD 1 in the standardised target space), de-standardised: undoes an MSE head's
    shrinkage with validation statistics only (the field does it with the test set's own)."""
    val = np.asarray(preds.pred("val", head), np.float64)
    mean, sd = val.mean(axis=0), val.std(axis=0)
    z = np.asarray(preds.pred(split, head), np.float64)
    z = np.where(sd > eps, (z - mean) / np.where(sd > eps, sd, 1.0), z)
    return z * preds.target_std + preds.target_mean


def main() -> None:
    from megdecode.artifacts.latents import read_latents
    from megdecode.artifacts.paths import Layout
    from megdecode.artifacts.predictions import CLIP, MSE, read_predictions
    from megdecode.artifacts.splits import TEST_SMALL
    from megdecode.artifacts.stimuli import read_stimuli
    from megdecode.config import load_config
    from megdecode.metrics import image as im
    from megdecode.metrics.retrieval import cosine_similarity, gallery, sim_scores
    from megdecode.reconstruction.base import load_images, resize_images
    from megdecode.reconstruction.decoder import DecoderGenerator
    from megdecode.reconstruction.stage import _write_pngs, feature_extractor_for_backbone

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/fmri-demo.yaml")
    args = parser.parse_args()
    config = load_config(args.config)
    layout = Layout.from_config(config)
    recon = config["reconstruction"]
    backbone, metric_px = recon["backbone"], int(recon["metrics"]["image_size"])
    decoder_px = int(recon["decoder"]["image_size"])
    stimuli = read_stimuli(layout.stimuli_table)
    latents = read_latents(layout.latents.format(backbone=backbone))
    decoder_dir = Path(layout.decoder_generator.format(backbone=backbone))
    generator = DecoderGenerator(decoder_dir / "model.safetensors", decoder_dir / "decoder.json")
    features = feature_extractor_for_backbone(backbone, config["backbones"][backbone], None, 1)

    sources = {f"MEG {m}": layout.predictions(m) for m in ("brain", "ridge")}
    if config.get("fmri", {}).get("enabled"):
        sources |= {f"fMRI {m}": layout.fmri_predictions(m) for m in config["fmri"]["models"]}
    fmri_subjects = config["fmri"].get("subjects") or config["study"]["subjects"]
    seed = config["training"]["seeds"][0]
    rows = []
    for modality, pattern in sources.items():
        for subject in config["study"]["subjects"] if modality.startswith("MEG") else fmri_subjects:
            path = Path(pattern.format(backbone=backbone, subject=subject, seed=seed))
            if not path.is_file():
                continue
            preds = read_predictions(path)
            ids = preds.image_ids[TEST_SMALL]
            gallery_ids, target = gallery(ids)
            true = latents.get(ids, np.float64).reshape(len(ids), -1)
            seen = load_images(stimuli, layout.stimuli_images, list(ids), metric_px)
            row = {"modality": modality, "subject": subject, "n_images": len(ids)}
            for head in (CLIP, MSE):
                if preds.has(TEST_SMALL, head):
                    sim = cosine_similarity(
                        preds.pred(TEST_SMALL, head), preds.candidates(latents, gallery_ids)
                    )
                    row[f"top5_{head}"] = float(sim_scores(sim, target)["top5_acc"].mean())
            mse = preds.destandardised(TEST_SMALL, MSE).astype(np.float64)
            row["sd_ratio_mse"] = float(np.sqrt(mse.var(axis=0).sum() / true.var(axis=0).sum()))
            for head in (
                CLIP,
                MSE,
            ):  # two-way of the retrieval itself: 1 - mean relative rank among the others
                if preds.has(TEST_SMALL, head):
                    sim = cosine_similarity(
                        preds.pred(TEST_SMALL, head), preds.candidates(latents, gallery_ids)
                    )
                    row[f"retrieval_two_way_{head}"] = float(
                        np.mean((sim < np.diag(sim)[:, None]).sum(1) / (len(sim) - 1))
                    )
            row["latent_two_way_mse"] = im.two_way_identification(true, mse)
            inputs = {"true": true, "mse": mse, "mse_clipped": generator.transform.clip(mse)}
            inputs["mse_rescaled"] = rescale_to_training(preds, MSE)
            if preds.has(TEST_SMALL, CLIP):
                inputs["clip_rescaled"] = rescale_to_training(preds, CLIP)
            for name, values in inputs.items():
                images = generator.decode(values.astype(np.float32))
                for px, label in ((metric_px, ""), (decoder_px, f"@{decoder_px}")):
                    ref = (
                        seen
                        if px == metric_px
                        else load_images(stimuli, layout.stimuli_images, list(ids), px)
                    )
                    out = resize_images(images, px)
                    with tempfile.TemporaryDirectory() as tmp:
                        _write_pngs(ref, list(ids), Path(tmp) / "seen")
                        _write_pngs(out, list(ids), Path(tmp) / "recon")
                        f_seen = features(str(Path(tmp) / "seen"), list(ids))
                        f_recon = features(str(Path(tmp) / "recon"), list(ids))
                    row[f"two_way_{name}{label}"] = im.two_way_identification(f_seen, f_recon)
                    if not label:
                        row[f"pixcorr_{name}"] = im.pixcorr(ref, out)
                        row[f"ssim_{name}"] = im.ssim(ref, out)
            rows.append(row)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(table.round(3).to_string(index=False))
    print("\nmean per modality:")
    print(table.drop(columns="subject").groupby("modality").mean().round(3).T.to_string())


if __name__ == "__main__":
    main()
