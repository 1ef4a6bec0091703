"""Tables, figures, the evaluate/report rules on a fake upstream tree, and the tiny-data ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_snakemake
from PIL import Image

from megdecode.artifacts.evaluation_tables import LONG_COLUMNS
from megdecode.artifacts.windows import LISTED, listed_windows
from megdecode.config import section_defaults
from megdecode.evaluation.timeresolved import TimeResolvedSettings
from megdecode.io import read_tsv, save_npy, save_npz, write_json, write_tsv
from megdecode.reporting import examples, figures
from megdecode.reporting import tables as rp
from megdecode.reporting.common import REPORT_FIGURE_NAMES, ReportSettings

SETTINGS = ReportSettings.from_config(section_defaults("report"))

SUBJECTS = ("01", "02")


def _row(**fields: object) -> dict[str, object]:
    """One long-table row of backbone hog over the full epoch; ``fields`` give the rest or override."""
    full = {"window": "full", "window_kind": "full", "tmin": np.nan, "tmax": np.nan}
    return {"backbone": "hog", "backbone_label": "HOG", **full, **fields}


def long_table() -> pd.DataFrame:
    """Hand-made retrieval rows: brain 0.6 / 0.4 (mean 0.5), ridge 0.1 / 0.1 on one backbone."""
    rows = []
    for subject, brain in zip(SUBJECTS, (0.6, 0.4), strict=True):
        for model, value in (("brain", brain), ("ridge", 0.1), ("chance", 0.05)):
            for ts, chance in (("test_small", 0.05), ("test_large", 0.01)):
                for metric, v, ci_low, ci_high, c in (
                    ("top5_acc", value, value - 0.1, value + 0.1, chance),
                    ("median_rank", 0.5 - value / 2, 0.1, 0.6, 0.5),
                ):
                    rows.append(
                        _row(
                            subject=subject,
                            model=model,
                            test_set=ts,
                            metric=metric,
                            value=v,
                            ci_low=ci_low,
                            ci_high=ci_high,
                            chance=c,
                        )
                    )
    for subject in SUBJECTS:
        for i, t0 in enumerate(np.arange(-0.2, 0.6, 0.1)):
            for ts in ("test_small", "test_large"):
                rows.append(
                    _row(
                        subject=subject,
                        model="ridge",
                        test_set=ts,
                        window=f"sliding_{i}",
                        window_kind="sliding",
                        tmin=t0,
                        tmax=t0 + 0.1,
                        metric="top5_acc",
                        value=0.05 + 0.3 * (i == 3),
                        ci_low=0,
                        ci_high=1,
                        chance=0.05,
                    )
                )
    return pd.DataFrame(rows).reindex(columns=LONG_COLUMNS)


def test_table1_means_spread_and_factor() -> None:
    t1 = rp.table1(long_table(), SETTINGS)
    idx = t1.set_index(["test_set", "metric", "model"])
    assert idx.loc[("test_small", "top5_acc", "brain"), "mean"] == pytest.approx(0.5)
    assert idx.loc[("test_small", "top5_acc", "brain"), "sd"] == pytest.approx(np.std([0.6, 0.4], ddof=1))
    assert idx.loc[("test_small", "top5_acc", "brain/ridge"), "mean"] == pytest.approx(5.0)
    # median rank: brain 0.25, ridge 0.45 -> ridge/brain = 1.8 (> 1 = brain better)
    assert idx.loc[("test_large", "median_rank", "brain/ridge"), "mean"] == pytest.approx(0.45 / 0.25)
    assert "chance" not in set(t1.model)
    md = rp.table1_markdown(t1, SETTINGS)
    assert "| HOG | 50.0 ± 14.1 |" in md and "5.0x" in md and "small top-5 5.00" in md
    tex = rp.table1_latex(t1, SETTINGS)
    assert r"\begin{tabular}" in tex and r"50.0 $\pm$ 14.1" in tex and "5.0x" in tex
    assert "_" not in tex.replace(r"\_", "")  # every underscore escaped


def test_latex_escape() -> None:
    assert rp.latex_escape("top_5 & 10% #1") == r"top\_5 \& 10\% \#1"


def test_ground_truth_latencies(tmp_path: Path) -> None:
    truth = {
        "components": {
            "evoked": {"latencies_s": [0.1]},
            "early": {"latencies_s": [0.1]},
            "late": {"latencies_s": [0.25, 0.4]},
        }
    }
    write_json(truth, tmp_path / "gt.json")
    assert figures.ground_truth_latencies(tmp_path / "gt.json") == {"early": 0.1, "late1": 0.25, "late2": 0.4}
    assert figures.ground_truth_latencies(tmp_path / "absent.json") == {}


def test_attention_weights_from_state() -> None:
    emb = np.eye(4, dtype=np.float32)  # 4 sensors, 4-dim embedding
    heads = np.array([[10.0, 0, 0, 0], [0, 0, 0, 10.0]], dtype=np.float32)
    w = examples.attention_weights({"spatial.heads": heads, "spatial.embedding": emb, "other.weight": emb})
    assert w.shape == (2, 4)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert list(w.argmax(axis=1)) == [0, 3]
    assert examples.attention_weights({"conv.weight": emb}) is None


def test_figures_show_the_numbers(tmp_path: Path) -> None:
    """The drawn bars, ridge ticks, chance line and time course carry the table's numbers."""
    df = long_table()
    bars = figures.plot_retrieval_bars(df)
    small = bars.axes[0]
    assert [p.get_height() for p in small.patches] == pytest.approx([50.0])  # brain mean of 60 and 40
    dots = np.concatenate([c.get_offsets()[:, 1] for c in small.collections if len(c.get_offsets()) == 2])
    assert sorted(dots) == pytest.approx([40.0, 60.0])  # one dot per subject
    ridge = [c for c in small.collections if c.get_label() == "Ridge"]
    assert ridge and ridge[0].get_segments()[0][0][1] == pytest.approx(10.0)
    chance = [line for line in small.lines if line.get_label() == "Chance"]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(5.0)
    course = figures.plot_timecourses(df).axes[0]
    x, y = course.lines[0].get_data()
    assert x[int(np.argmax(y))] == pytest.approx(0.15) and max(y) == pytest.approx(35.0)  # window 3 peaks
    write_tsv(df, tmp_path / "long.tsv")
    outputs = {n: [str(tmp_path / f"{n}.png"), str(tmp_path / f"{n}.pdf")] for n in REPORT_FIGURE_NAMES}
    figures.write_figures(tmp_path / "long.tsv", outputs, {**section_defaults("report"), "dpi": 50})
    for png, pdf in outputs.values():
        with Image.open(png) as im:
            assert im.format == "PNG" and min(im.size) > 50
        assert Path(pdf).read_bytes()[:4] == b"%PDF"


# --------------------------------------------------------------------------- fake upstream tree


def make_fake_results(root: Path, n_train: int = 120) -> Path:
    """A minimal results tree that follows docs/ARCHITECTURE.md for config/tiny.yaml's layout."""
    rng = np.random.default_rng(0)
    backbones = {
        "colour_hist": 6,
        "hog": 7,
        "attributes": 5,
        "dinov2_random": 8,
    }  # tiny.yaml over config.yaml
    ids = [f"im{i:03d}" for i in range(40)]
    train_ids, test_ids, large_ids = ids[:24], ids[24:32], ids[32:40]
    img_dir = root / "stimuli" / "images"
    img_dir.mkdir(parents=True)
    for i, x in enumerate(ids):
        Image.new("RGB", (16, 16), (6 * i, 255 - 6 * i, 128)).save(img_dir / f"{x}.png")
    write_tsv(
        pd.DataFrame(
            {
                "image_id": ids,
                "file": [f"{x}.png" for x in ids],
                "concept": ids,
                "exemplar": 1,
                "role": "exp",
                "concept_split": "train",
            }
        ),
        root / "stimuli" / "stimuli.tsv",
    )
    write_json(
        {"components": {"early": {"latencies_s": [0.1]}, "late": {"latencies_s": [0.3]}}},
        root / "sourcedata" / "ground_truth.json",
    )
    latents = {}
    for b, dim in backbones.items():
        latents[b] = rng.standard_normal((len(ids), dim)).astype("float32")
        save_npy(latents[b], root / "latents" / b / "latents.npy")
        write_tsv(pd.DataFrame({"image_id": ids}), root / "latents" / b / "index.tsv")
        write_json(
            {
                "label": "DINOv2 tiny" if b == "dinov2_random" else b.upper(),
                "pretrained": b != "dinov2_random",
            },
            root / "latents" / b / "latents.json",
        )
    sfreq, tmin, n_times, n_ch = 20.0, -0.2, 16, 6
    splits = [("train", train_ids[i % 24]) for i in range(n_train)] + [("val", x) for x in train_ids[:8]]
    splits += [("test_small", x) for x in test_ids] + [("test_large", x) for x in large_ids]
    trials = pd.DataFrame(splits, columns=["split", "image_id"])
    for s in SUBJECTS:
        d = root / "preprocessed" / f"sub-{s}"
        save_npy(rng.standard_normal((len(trials), n_ch, n_times)).astype("float32"), d / "meg.npy")
        write_tsv(trials.assign(subject=s, concept=trials["image_id"]), d / "trials.tsv")
        write_json({"sfreq": sfreq, "tmin": tmin, "n_times": n_times}, d / "info.json")
        write_tsv(
            pd.DataFrame(
                {"name": [f"M{c}" for c in range(n_ch)], "x": rng.random(n_ch), "y": rng.random(n_ch)}
            ),
            d / "channels.tsv",
        )
    for b, lat in latents.items():
        mean, std = lat[:24].mean(0), lat[:24].std(0)
        for s in SUBJECTS:
            arrays = {"target_mean": mean, "target_std": std}
            for split, sids in (("val", train_ids[:8]), ("test_small", test_ids), ("test_large", large_ids)):
                y = (lat[[ids.index(x) for x in sids]] - mean) / std
                arrays[f"{split}_pred"] = (y + 0.5 * rng.standard_normal(y.shape)).astype("float32")
                arrays[f"{split}_image_id"] = np.array(sids)
            save_npz(arrays, root / "models" / "ridge" / b / f"sub-{s}" / "predictions.npz")
            if b == "attributes":
                run = root / "models" / "brain" / b / f"sub-{s}" / "seed-0"
                save_npz(arrays, run / "predictions.npz")
                for w in listed_windows(_tiny_eval_cfg()["timeresolved"]["brain_windows"]):
                    save_npz(
                        arrays, root / "models" / "brain_window" / b / f"sub-{s}" / w.name / "predictions.npz"
                    )
                from safetensors.numpy import save_file

                save_file(
                    {
                        "spatial.heads": rng.standard_normal((3, 4)).astype("float32"),
                        "spatial.embedding": rng.standard_normal((n_ch, 4)).astype("float32"),
                    },
                    str(run / "model.safetensors"),
                )
    return root


MY_RULES = [
    "evaluate_retrieval",
    "evaluate_timeresolved",
    "report_tables",
    "report_figures",
    "report_examples",
]


@pytest.mark.slow
def test_evaluate_and_report_rules_on_fake_tree(tmp_path: Path) -> None:
    """The evaluate/report rules alone, on a contract-conforming fake upstream (no other stage needed)."""
    results = make_fake_results(tmp_path / "results")
    targets = [
        str(results / "tables" / "table1.md"),
        str(results / "figures" / "top5_examples.png"),
        str(results / "figures" / "timecourses.pdf"),
        str(results / "figures" / "attention_maps.png"),
    ]
    run_snakemake(results, "--allowed-rules", *MY_RULES, "--", *targets)
    long = read_tsv(results / "tables" / "results_long.tsv", dtype={"subject": str})
    assert set(long.model) == {"brain", "ridge", "chance"}
    assert {"colour_hist", "attributes", "dinov2_random"} <= set(long.backbone)
    assert set(long[long.model == "brain"].backbone) == {"attributes"}
    listed = long[long.window_kind == LISTED]  # config/tiny.yaml lists one brain window
    assert set(listed.model) == {"brain"} and set(listed.window) == {"listed_+0_+500ms"}
    assert "DINOv2 tiny (random features)" in set(long.backbone_label)
    assert long.value.notna().all()
    md = (results / "tables" / "table1.md").read_text()
    assert "ATTRIBUTES" in md and "x |" in md
    # rerunning has nothing to do
    proc = run_snakemake(results, "-n", "--allowed-rules", *MY_RULES, "--", *targets)
    assert "Nothing to be done" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- ground truth on tiny data


def _peak(curve: pd.DataFrame) -> float:
    """Centre of the sliding window with the lowest median rank, averaged over subjects and test sets."""
    mean = curve.assign(c=((curve.tmin + curve.tmax) / 2).round(6)).groupby("c").value.mean()
    return float(mean.idxmin())


@pytest.mark.slow
def test_timeresolved_peaks_at_simulated_latencies(tiny_results: Path) -> None:
    """Low-level latent peaks at the early latency, the attribute latent at the late one (within a step)."""
    truth = json.loads((tiny_results / "sourcedata" / "ground_truth.json").read_text())
    early = truth["components"]["early"]["latencies_s"]
    late = truth["components"]["late"]["latencies_s"]
    step = float(TimeResolvedSettings.from_config(_tiny_eval_cfg()).sliding_step)
    tr = pd.concat(
        [
            read_tsv(p, dtype={"subject": str})
            for p in (tiny_results / "evaluation" / "timeresolved").rglob("*.tsv")
        ]
    )
    sliding = tr[(tr.window_kind == "sliding") & (tr.metric == "median_rank")]
    low = _peak(sliding[sliding.backbone == "colour_hist"])
    attr = _peak(sliding[sliding.backbone == "attributes"])
    assert min(abs(low - t) for t in early) <= step + 1e-9, (low, early)
    assert min(abs(attr - t) for t in late) <= step + 1e-9, (attr, late)
    # the brain module retrained on tiny.yaml's listed window [0, 0.5] s beats chance in every subject
    listed = tr[(tr.window_kind == LISTED) & (tr.model == "brain")]
    assert set(listed.window) == {"listed_+0_+500ms"} and set(listed.backbone) == {"attributes"}
    assert len(listed) == 2 * 2 * 3 and np.isfinite(listed.value).all()  # subjects x test sets x metrics
    ranks = listed[listed.metric == "median_rank"]
    assert (ranks.value < ranks.chance).all(), ranks
    top5 = listed[listed.metric == "top5_acc"].groupby("test_set")[["value", "chance"]].mean()
    assert (top5.value > top5.chance).all(), top5
    chance = pd.concat(
        [read_tsv(p) for p in (tiny_results / "evaluation" / "retrieval" / "chance").rglob("*.tsv")]
    )
    for row in chance.itertuples():  # the shuffled-label control stays at chance
        assert abs(row.value - row.chance) <= max(0.05, row.ci_high - row.ci_low), row


def _tiny_eval_cfg() -> dict:
    from megdecode.config import load_config

    return load_config(REPO / "config.yaml", REPO / "config" / "tiny.yaml")["evaluation"]
