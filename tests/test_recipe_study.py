"""The recipe study: validation types, early stopping on loss or top-5, selection, the concept design, the
summary, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake

from megdecode.artifacts.recipe_study import read_scores
from megdecode.artifacts.splits import LeakageError, check_no_leakage
from megdecode.config import load_yaml, merge_configs, section_defaults
from megdecode.learning_curve.recipe import (
    ConceptDesign,
    RecipeParams,
    Variant,
    choose,
    variants_from_config,
)
from megdecode.learning_curve.recipe_summary import (
    best_ridge,
    crosscheck_report,
    crosscheck_table,
    recipe_table,
)
from megdecode.preprocessing.assemble import assign_splits
from megdecode.simulate.params import SimulationParams
from megdecode.simulate.stimuli import build_stimuli
from megdecode.training.loop import EarlyStopping

PARAMS = RecipeParams(
    exemplars_per_concept=4,
    n_val=12,
    val_images_per_concept=2,
    n_select=8,
    test_repeats=2,
    backbone="attributes",
    ridge_time_bins=(10,),
    min_train_samples=0,
    threads=1,
)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    cfg = section_defaults("simulation")
    cfg["stimuli"].update(n_train_concepts=40, n_test_concepts=4, exemplars_per_train_concept=6)
    cfg["stimuli"].update(exemplars_per_test_concept=2, image_size=32)
    return build_stimuli(SimulationParams.from_config(cfg), 0)[0]


def _concepts(table: pd.DataFrame, ids: list[str]) -> set[str]:
    return set(table.set_index("image_id").loc[ids, "concept"])


def test_concept_design_grows_by_concepts_and_keeps_roles_apart(table):
    small, large = (ConceptDesign.draw(table, n, PARAMS, 0, 0) for n in (24, 40))
    assert len(small.train) == 24 and len(large.train) == 40
    assert small.train == large.train[:24]  # nested, whole concepts
    assert len(_concepts(table, large.train)) == 10
    val_c, sel_c = _concepts(table, large.val_concepts), _concepts(table, large.select)
    train_c, test_c = _concepts(table, large.train), _concepts(table, large.test_large)
    assert len(val_c) == 6 and len(sel_c) == 4  # 12 and 8 images, 2 per concept
    for a, b in [(val_c, train_c), (val_c, sel_c), (sel_c, train_c), (val_c | sel_c | train_c, test_c)]:
        assert not a & b
    # trial validation: unseen exemplars of the training concepts at this size
    assert _concepts(table, small.val_trials) <= _concepts(table, small.train)
    assert not set(small.val_trials) & set(large.train)
    # the same for every subject (no subject in the design's key) and reproducible
    assert ConceptDesign.draw(table, 40, PARAMS, 0, 0) == large
    assert ConceptDesign.draw(table, 40, PARAMS, 0, 1).train != large.train


def test_concept_design_refuses_a_set_it_cannot_make(table):
    with pytest.raises(ValueError, match="training concepts"):
        ConceptDesign.draw(table, 4 * 40, PARAMS, 0, 0)


def test_selection_trials_hold_no_test_image(table):
    design = ConceptDesign.draw(table, 24, PARAMS, 0, 0)
    trials = design.trials(table, "concepts", selection=True)
    assert set(trials.role) == {"train", "val", "select"}
    tests = design.trials(table, "trials")
    assert list(tests.role.unique()) == ["train", "val", "test_large", "test_small"]
    assert (tests.loc[tests.role == "test_small", "index"] == [0] * 4 + [1] * 4).all()


def test_choose_takes_the_best_selection_score_and_breaks_ties_in_config_order():
    variant = Variant("C", "concepts", ("loss", "top5"), (1e-3, 3e-4), {}, False, None)
    rows = []
    for lr, crit, score in [
        (1e-3, "loss", 0.2),
        (1e-3, "top5", 0.3),
        (3e-4, "loss", 0.3),
        (3e-4, "top5", 0.1),
    ]:
        rows += [dict(lr=lr, stop_on=crit, top5_acc=score)] * 2
    choice = choose(pd.DataFrame(rows), variant)
    assert (choice["stop_on"], choice["lr"]) == ("top5", 1e-3)  # 0.3 twice: the first learning rate wins
    assert len(choice["candidates"]) == 4


def test_variants_taking_choices_need_a_selecting_variant():
    base = {"stop_on": ["loss", "top5"], "lr": [0.004], "brain_module": {}, "shared": False}
    ok = {
        "B": {"validation": "concepts", **base},
        "D": {"validation": "concepts", **base, "choices_from": "B"},
    }
    assert variants_from_config({"variants": ok})["D"].choices_from == "B"
    bad = {**ok, "D": {**ok["D"], "lr": [0.001]}}
    with pytest.raises(ValueError, match="candidates differ"):
        variants_from_config({"variants": bad})
    with pytest.raises(ValueError, match="not a variant with its own selection"):
        variants_from_config({"variants": {"D": ok["D"]}})


def test_early_stopping_on_top5_keeps_the_highest_and_refuses_nan():
    stop = EarlyStopping(patience=2, criterion="top5")
    assert [stop.update(v, e) for e, v in enumerate([0.1, 0.3, 0.2, 0.3])] == [True, True, False, False]
    assert stop.best_epoch == 1 and stop.stop
    loss = EarlyStopping(patience=1)
    assert loss.update(2.0, 0) and loss.update(1.0, 1) and not loss.update(1.5, 2)
    with pytest.raises(FloatingPointError, match="epoch 3"):
        loss.update(float("nan"), 3)


def _trials() -> pd.DataFrame:
    concepts = [f"c{i}" for i in range(10) for _ in range(4)]
    return pd.DataFrame(
        {
            "trial_type": "exp",
            "image_id": [f"{c}_{k}" for c, k in zip(concepts, list(range(4)) * 10, strict=True)],
            "concept": concepts,
            "concept_split": ["train"] * 32 + ["test"] * 8,
        }
    )


def test_concept_validation_holds_out_whole_training_concepts():
    trials = _trials()
    split = assign_splits(trials, 0.25, np.random.default_rng(0), "concepts")
    val = set(trials.loc[split == "val", "concept"])
    assert len(val) == 2 and not val & set(trials.loc[split == "train", "concept"])
    assert (split[trials.concept_split == "test"] == "test_large").all()
    check_no_leakage(trials.assign(split=split), "x", "concepts")
    by_trials = assign_splits(trials, 0.25, np.random.default_rng(0), "trials")
    assert (by_trials == "val").sum() == 8
    with pytest.raises(LeakageError, match="validation concepts"):
        check_no_leakage(trials.assign(split=by_trials), "x", "concepts")


def test_recipe_table_pairs_each_variant_with_the_ridge_of_its_validation_type():
    rows = []
    for _subject, bump in (("01", 0.0), ("02", 0.1)):
        for validation, ridge_val in (("trials", 0.9), ("concepts", 0.2)):
            for decoder, val_top5, test_top5 in (("ridge_bin10", ridge_val, 0.3), ("ridge_bin1", 0.1, 0.5)):
                for test_set, value in (("val", val_top5), ("test_large", test_top5)):
                    rows.append(
                        dict(
                            validation=validation,
                            variant="",
                            decoder=decoder,
                            stop_on="",
                            test_set=test_set,
                            top5_acc=value + bump,
                        )
                    )
        for variant, validation, value in (("A", "trials", 0.4), ("B", "concepts", 0.6)):
            rows.append(
                dict(
                    validation=validation,
                    variant=variant,
                    decoder="brain",
                    stop_on="loss",
                    test_set="test_large",
                    top5_acc=value + bump,
                    chosen=True,
                )
            )
        rows.append(
            dict(
                validation="", variant="", decoder="oracle", stop_on="", test_set="test_large", top5_acc=0.95
            )
        )
    units = pd.DataFrame(rows).assign(world="nonlinear", n_train=100, seed=0, top1_acc=0.0)
    units["subject"] = np.repeat(["01", "02"], len(units) // 2)
    units[["epochs", "best_epoch", "lr"]] = [5, 3, 0.004]
    units["chosen"] = units["chosen"].fillna(False).astype(bool)
    best = best_ridge(units).set_index("validation")["best_ridge"]
    assert best["trials"] == "ridge_bin10" and best["concepts"] == "ridge_bin10"
    table = recipe_table(units, 200, 0.95, 0).set_index("variant")
    assert table.loc["A", "brain_minus_ridge"] == pytest.approx(0.1)
    assert table.loc["B", "brain_minus_ridge"] == pytest.approx(0.3)
    assert table.loc["B", "brain_wins"] == 2 and table.loc["A", "ceiling_oracle"] == pytest.approx(0.95)


def test_crosscheck_pairs_variants_on_the_selection_set_without_the_selection_unit():
    rows = [
        dict(variant=v, subject=s, n_train=n, test_set=t, top5_acc=value + bump, chosen=chosen)
        for v, value in (("A", 0.10), ("B", 0.05))
        for s, bump in (("01", 0.0), ("02", 0.02), ("03", 0.04))
        for n in (100, 400)
        for t, chosen in (("select", True), ("select", False), ("val", True))
    ]
    scores = pd.DataFrame(rows).assign(world="nonlinear", seed=0)
    scores.loc[(scores.test_set != "select") | ~scores.chosen, "top5_acc"] = 0.9  # never counted
    scores.loc[(scores.subject == "01") & (scores.n_train == 100), "top5_acc"] = 1.0  # the selection unit
    selection_unit = {"subject": "01", "seed": 0, "n_train": 100}
    table = crosscheck_table(scores, selection_unit, ["A", "B"], 200, 0.95, 0)
    pooled = table[table.n_train == "all"].set_index(["variant", "versus"])
    assert pooled.loc[("A", ""), "top5_acc"] == pytest.approx(0.10 + (0.02 + 0.04 + 0.0 + 0.02 + 0.04) / 5)
    assert pooled.loc[("A", "B"), "top5_acc"] == pytest.approx(0.05)
    assert pooled.loc[("A", "B"), "wins"] == 5 and pooled.loc[("A", "B"), "n_units"] == 5
    assert pooled.loc[("A", "B"), "ci_low"] == pytest.approx(0.05)  # every unit differs by the same amount
    per_size = table[table.n_train == "100"].set_index(["variant", "versus"])
    assert per_size.loc[("B", ""), "n_units"] == 2
    assert "| nonlinear | all | A | B | +5.0 |" in crosscheck_report(table, 0.95)


@pytest.mark.slow
def test_tiny_recipe_study_workflow(tmp_path: Path):
    """`snakemake recipe_study` on a tiny grid (config/tiny-recipe-study.yaml): every variant kind (fixed,
    selected, taking a choice, shared), the choice on the selection set, the table, the ceilings, and nothing
    left to do afterwards."""
    names = ("recipe-study", "tiny", "tiny-recipe-study")
    cfg = merge_configs(*(load_yaml(REPO / "config" / f"{name}.yaml") for name in names))
    cfg["results_dir"] = str(tmp_path / "results")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results"
    run_snakemake(results, "recipe_study", configfile=config)
    out = results / "recipe_study"
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert set(summary.variant) == {"A", "B", "C", "D"} and set(summary.n_train) == {40}
    assert set(summary.loc[summary.variant == "B", "stop_on"]) == {"loss", "top5"}
    choice_c = json.loads((out / "nonlinear" / "selection" / "C_choice.json").read_text())
    assert choice_c["lr"] in (0.004, 0.001) and len(choice_c["candidates"]) == 4
    shared = read_scores(out / "nonlinear" / "brain-D" / "shared_seed-0_n-40_scores.tsv")
    assert set(shared.subject) == {"01", "02"} and set(shared.lr) == {choice_c["lr"]}
    assert set(shared.loc[shared.chosen, "stop_on"]) == {choice_c["stop_on"]}
    selection = read_scores(out / "nonlinear" / "selection" / "C_scores.tsv")
    assert set(selection.test_set) == {"val", "select"}  # no test image in a selection job
    ceilings = summary[["ceiling_oracle_image", "ceiling_fair"]]
    assert ceilings.notna().all().all() and ((ceilings >= 0) & (ceilings <= 1)).all().all()
    ceiling = read_scores(out / "nonlinear" / "ceiling" / "sub-02_seed-0_scores.tsv")
    brain = read_scores(out / "nonlinear" / "brain-A" / "sub-02_seed-0_n-40_scores.tsv")
    for test_set in ("test_large", "test_small"):  # the ceilings score the very test trials of the units
        for decoder in ("oracle_image", "ceiling_fair"):
            part = ceiling[(ceiling.decoder == decoder) & (ceiling.test_set == test_set)]
            assert sorted(part.image_id) == sorted(brain.loc[brain.test_set == test_set, "image_id"].unique())
    report = (out / "recipe_study.md").read_text()
    assert "Choices made on the selection set" in report and (out / "recipe_study.png").stat().st_size > 0
    # the cross-check scores the brain job's very model: identical validation rows, selection set not test
    for variant in ("A", "C"):
        check = read_scores(out / "nonlinear" / f"crosscheck-{variant}" / "sub-02_seed-0_n-40_scores.tsv")
        unit = read_scores(out / "nonlinear" / f"brain-{variant}" / "sub-02_seed-0_n-40_scores.tsv")
        assert set(check.test_set) == {"val", "select"}
        pd.testing.assert_frame_equal(
            check[check.test_set == "val"].reset_index(drop=True),
            unit[unit.test_set == "val"].reset_index(drop=True),
        )
    crosscheck = pd.read_csv(out / "crosscheck.tsv", sep="\t", keep_default_na=False)
    pairs = set(zip(crosscheck.variant, crosscheck.versus, strict=True))
    assert pairs == {("A", ""), ("C", ""), ("A", "C")}
    assert set(crosscheck.n_units) == {1}  # sub-01 at 40 trials is the selection unit: left out
    dry = run_snakemake(results, "recipe_study", "-n", configfile=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_crosscheck_refuses_unknown_or_shared_variants():
    from megdecode.config import ConfigError
    from megdecode.plan import recipe_crosscheck_variants

    section = {"variants": {"A": {"shared": False}, "D": {"shared": True}}}
    assert recipe_crosscheck_variants({**section, "crosscheck_variants": ["A"]}) == ["A"]
    for wrong in (["D"], ["Z"]):
        with pytest.raises(ConfigError, match=r"per-subject variants .*\['A'\]"):
            recipe_crosscheck_variants({**section, "crosscheck_variants": wrong})
