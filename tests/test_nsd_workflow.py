"""config/nsd.yaml on NSD layout twins: the full-size plan (snakemake -n) and a tiny end-to-end run.

The NSD rules (rules/nsd.smk) are asked for their outputs directly: `rule all` of an NSD-only study is the
fMRI wiring's (see docs/nsd.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml
from conftest import REPO, run_snakemake
from nsd_twin import FULL_SIZE, NsdTwinSpec, make_nsd_twin, twin_settings

from megdecode.artifacts.fmri import read_fmri_subject
from megdecode.artifacts.stimuli import read_stimuli
from megdecode.config import section_defaults

SUBJECTS = ["01", "02", "05", "07"]


def nsd_config(tmp: Path, nsd: dict, study: dict | None = None) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "nsd.yaml").read_text())
    cfg["nsd"].update(nsd)
    cfg["study"].update(study or {})
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def targets(results: Path, subjects: list[str]) -> list[str]:
    return [
        str(results / "stimuli" / "stimuli.tsv"),
        *(str(results / "fmri" / "subjects" / f"sub-{s}" / "betas.npy") for s in subjects),
    ]


def test_full_size_nsd_study_plans_on_a_placeholder_twin(tmp_path):
    layout = make_nsd_twin(
        tmp_path / "nsd", NsdTwinSpec(subjects=tuple(SUBJECTS), placeholders=True, **FULL_SIZE)
    )
    configfile = nsd_config(tmp_path, {"root": str(layout.root)})
    results = tmp_path / "results"
    proc = run_snakemake(results, "-n", *targets(results, SUBJECTS), configfile=configfile, timeout=300)
    text = proc.stdout + proc.stderr
    stats = text.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.M)}
    assert counts == {"nsd_stimuli": 1, "nsd_subject": 4}
    for s in SUBJECTS:  # each subject job reads its ROI mask and all 40 sessions
        (block,) = [
            b for b in text.split("rule nsd_subject:")[1:] if f"sub-{s}/betas.npy" in b.split("log:")[0]
        ]
        sessions = re.findall(
            rf"subj{s}/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session(\d\d)\.hdf5", block
        )
        assert sessions == [f"{i:02d}" for i in range(1, 41)]
        assert f"subj{s}/func1pt8mm/roi/nsdgeneral.nii.gz" in block


def test_nsd_rules_run_on_a_tiny_twin(tmp_path):
    spec = NsdTwinSpec(subjects=("02",), n_sessions=2, trials_per_session=12, n_shared=2)
    layout = make_nsd_twin(tmp_path / "nsd", spec)
    settings = twin_settings(spec, layout.root, section_defaults("nsd"))
    counts = {
        k: getattr(settings, k) for k in ("trials_per_session", "images_per_subject", "n_stimuli", "n_shared")
    }
    nsd = {"root": str(layout.root), "image_size": spec.image_size, "val_fraction": 0.25, **counts}
    configfile = nsd_config(tmp_path, nsd, {"subjects": ["02"], "sessions": ["01", "02"]})
    results = tmp_path / "results"
    run_snakemake(results, *targets(results, ["02"]), configfile=configfile, cores=1, timeout=300)
    subject = read_fmri_subject(results / "fmri" / "subjects" / "sub-02")
    assert subject.betas.shape[0] == 24 and subject.info["source"] == "nsd"
    stimuli = read_stimuli(results / "stimuli" / "stimuli.tsv")
    assert set(subject.trials["image_id"]) == set(stimuli["image_id"])
    assert set(stimuli.loc[stimuli["role"] == "test", "image_id"]) == set(
        subject.trials.loc[subject.trials["split"] == "test", "image_id"]
    )
    assert all((results / "stimuli" / "images" / f).is_file() for f in stimuli["file"])
    assert np.isfinite(subject.betas).all()
    again = run_snakemake(results, "-n", *targets(results, ["02"]), configfile=configfile, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
