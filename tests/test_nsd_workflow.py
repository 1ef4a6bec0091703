"""config/nsd.yaml on NSD layout twins: the full-size plan (snakemake -n all) and a tiny end-to-end run.

An NSD study (study.source 'nsd') has no MEG stage: `rule all` asks for NSD's stimuli and subjects
(rules/nsd.smk) and the fMRI decoders' retrieval tables (rules/fmri.smk, fmri.source 'nsd').
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake
from nsd_twin import FULL_SIZE, NsdTwinSpec, make_nsd_twin, twin_settings

from megdecode.artifacts.fmri import read_fmri_subject
from megdecode.artifacts.stimuli import read_stimuli
from megdecode.config import section_defaults

SUBJECTS = ["01", "02", "05", "07"]


def nsd_config(tmp: Path, nsd: dict, **sections: dict) -> tuple[Path, dict]:
    """config/nsd.yaml with ``nsd`` keys updated and whole sections replaced (``study`` is updated)."""
    cfg = yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())
    cfg["nsd"].update(nsd)
    cfg["study"].update(sections.pop("study", {}))
    cfg.update(sections)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, cfg


def job_counts(text: str) -> dict[str, int]:
    stats = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.M)}


def test_full_size_nsd_study_plans_on_a_placeholder_twin(tmp_path):
    layout = make_nsd_twin(
        tmp_path / "nsd", NsdTwinSpec(subjects=tuple(SUBJECTS), placeholders=True, **FULL_SIZE)
    )
    configfile, cfg = nsd_config(tmp_path, {"root": str(layout.root)})
    proc = run_snakemake(tmp_path / "results", "-n", configfile=configfile, timeout=300)
    text = proc.stdout + proc.stderr
    n_backbones, n_models = len(cfg["backbones"]), len(section_defaults("fmri")["models"])
    assert job_counts(text) == {
        "nsd_stimuli": 1,
        "nsd_subject": 4,
        "latents": n_backbones,
        "fmri_train_ridge": 4 * n_backbones,
        "fmri_train_mlp": 4 * n_backbones,
        "fmri_evaluate_retrieval": 1,
        "all": 1,
    }
    assert n_models == 2
    for s in SUBJECTS:  # each subject job reads its ROI mask and all 40 sessions
        (block,) = [
            b for b in text.split("rule nsd_subject:")[1:] if f"sub-{s}/betas.npy" in b.split("log:")[0]
        ]
        sessions = re.findall(
            rf"subj{s}/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session(\d\d)\.hdf5", block
        )
        assert sessions == [f"{i:02d}" for i in range(1, 41)]
        assert f"subj{s}/func1pt8mm/roi/nsdgeneral.nii.gz" in block


def test_nsd_study_decodes_a_planted_twin_and_a_shifted_one_falls_to_chance(tmp_path):
    """End to end on a twin whose betas carry a code of the image shown (tests/nsd_twin.py: the trial-to-image
    mapping computed there trial by trial, independently of the reader): subject 02 decodes far above chance;
    subject 05's betas are shifted by one trial, so the same workflow must land at chance. Any misalignment
    of trials, sessions, images or voxels in the reader would bring subject 02 down with it."""
    spec = NsdTwinSpec(
        subjects=("02", "05"),
        n_sessions=4,
        trials_per_session=60,
        n_shared=20,
        image_size=16,
        planted=True,
        planted_shift={"05": 1},
    )
    layout = make_nsd_twin(tmp_path / "nsd", spec)
    settings = twin_settings(spec, layout.root, section_defaults("nsd"))
    keys = ("trials_per_session", "images_per_subject", "n_stimuli", "n_shared", "image_size")
    nsd = {"root": str(layout.root), "val_fraction": 0.25, **{k: getattr(settings, k) for k in keys}}
    colours = {"kind": "handcrafted", "options": {"features": ["colour_histogram"], "colour_bins": 2}}
    configfile, _ = nsd_config(
        tmp_path,
        nsd,
        study={"subjects": ["02", "05"], "sessions": ["01", "02", "03", "04"]},
        backbones={"colours": colours},
        fmri={"enabled": True, "source": "nsd", "models": ["ridge"]},
    )
    results = tmp_path / "results"
    run_snakemake(results, configfile=configfile, cores=2, timeout=600)
    subject = read_fmri_subject(results / "fmri" / "subjects" / "sub-02")
    assert subject.betas.shape[0] == 240 and subject.info["source"] == "nsd"
    assert np.isfinite(subject.betas).all()
    stimuli = read_stimuli(results / "stimuli" / "stimuli.tsv")
    assert set(subject.trials["image_id"]) <= set(stimuli["image_id"])
    test_images = set(subject.trials.loc[subject.trials["split"] == "test", "image_id"])
    assert set(stimuli.loc[stimuli["role"] == "test", "image_id"]) == test_images and len(test_images) == 20
    assert all((results / "stimuli" / "images" / f).is_file() for f in stimuli["file"])
    top5 = {}
    for s in ("02", "05"):
        path = results / "fmri" / "evaluation" / "retrieval" / "ridge" / "colours" / f"sub-{s}.tsv"
        table = pd.read_csv(path, sep="\t")
        top5[s] = table.query("metric == 'top5_acc'").set_index("test_set")[["value", "chance"]]
    aligned, shifted = top5["02"], top5["05"]
    assert aligned.loc["test_small", "chance"] == pytest.approx(0.25)  # 5 of the 20 shared images
    assert aligned.loc["test_small", "value"] >= 0.8 and aligned.loc["test_large", "value"] >= 0.7
    for test_set in ("test_small", "test_large"):  # the shifted subject is within noise of chance
        assert shifted.loc[test_set, "value"] <= shifted.loc[test_set, "chance"] + 0.25
        assert aligned.loc[test_set, "value"] - shifted.loc[test_set, "value"] >= 0.4
    again = run_snakemake(results, "-n", configfile=configfile, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
