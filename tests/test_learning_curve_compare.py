"""Comparing two learning-curve runs cell by cell, paired per unit (megdecode.learning_curve.compare)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from megdecode.artifacts.learning_curve import SCORE_COLUMNS, find_scores, write_scores
from megdecode.artifacts.paths import Layout
from megdecode.learning_curve.compare import compare_runs, main, markdown_table, run_units


def _write_run(root, brain_hits: dict[str, list[int]], epochs: int) -> None:
    """One world, size 1000, two units (subjects 01, 02 at seed 0), 4 large-set items per decoder."""
    layout = Layout(results=str(root), bids_root="", stimuli_images="")
    for subject, hits in brain_hits.items():
        rows = []
        for decoder, decoder_hits in (("brain", hits), ("ridge_bin10", [1, 0, 1, 0])):
            for item, hit in enumerate(decoder_hits):
                rows.append(
                    dict(world="nonlinear", subject=subject, seed=0, n_train=1000, backbone="attributes")
                    | dict(decoder=decoder, test_set="test_large", image_id=f"img{item}")
                    | dict(top1_acc=0.0, top5_acc=float(hit), median_rank=3.0)
                    | (dict(epochs=epochs, best_epoch=epochs - 2) if decoder == "brain" else {})
                )
        path = layout.learning_curve_scores.format(world="nonlinear", subject=subject, seed=0, n_train=1000)
        write_scores(pd.DataFrame(rows).reindex(columns=SCORE_COLUMNS + ["epochs", "best_epoch"]), path)


def test_probe_minus_base_is_paired_per_unit_and_unchanged_decoders_are_identical(tmp_path):
    _write_run(tmp_path / "base", {"01": [1, 0, 0, 0], "02": [1, 1, 0, 0]}, epochs=40)
    _write_run(tmp_path / "probe", {"01": [1, 1, 1, 0], "02": [1, 1, 0, 0]}, epochs=70)
    assert len(find_scores(tmp_path / "base")) == 2
    table = compare_runs(run_units(tmp_path / "base"), run_units(tmp_path / "probe"), n_boot=200)
    brain = table[table["decoder"] == "brain"].iloc[0]
    assert brain["top5_base"] == pytest.approx(0.375) and brain["top5_probe"] == pytest.approx(0.625)
    # unit 01 gains 0.5, unit 02 nothing: mean +0.25, one unit of two better
    assert brain["probe_minus_base"] == pytest.approx(0.25)
    assert brain["probe_better"] == pytest.approx(0.5) and not brain["identical"]
    assert (brain["epochs_base"], brain["epochs_probe"], brain["best_epoch_probe"]) == (40, 70, 68)
    assert 0.0 <= brain["ci_low"] <= 0.25 <= brain["ci_high"] <= 0.5
    ridge = table[table["decoder"] == "ridge_bin10"].iloc[0]
    assert ridge["identical"] and ridge["probe_minus_base"] == 0.0 and np.isnan(ridge["epochs_probe"])
    text = markdown_table(table)
    assert "| +25.0 [" in text and "| identical |" in text and "40.0 (38.0) | 70.0 (68.0) |" in text


def test_a_run_without_scores_names_the_directory(tmp_path, capsys):
    _write_run(tmp_path / "base", {"01": [1, 0, 0, 0]}, epochs=40)
    with pytest.raises(FileNotFoundError, match="no learning-curve scores under .*missing"):
        main([str(tmp_path / "base"), str(tmp_path / "missing")])
    main([str(tmp_path / "base"), str(tmp_path / "base"), "--n-bootstrap", "10"])
    row = "| nonlinear | attributes | brain | test_large | 1000 | 25.0 | 25.0 | +0.0"
    assert row in capsys.readouterr().out
