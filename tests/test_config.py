"""Schema validation: defaults, unknown keys with suggestions, label patterns."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, parsed_workflow, run_snakemake

from megdecode.config import (
    ConfigError,
    extends_default,
    load_config,
    load_yaml,
    merge_configs,
    validate_config,
)

DEFAULT = REPO / "config.yaml"
TINY = REPO / "config" / "tiny.yaml"


def test_default_and_tiny_configs_are_valid():
    for path in sorted((REPO / "config").glob("*.yaml")):
        files = [DEFAULT, path] if extends_default(load_yaml(path)) else [path]
        if path.name == "learning-curve-longer.yaml":  # a probe laid over the learning curve
            files.insert(1, REPO / "config" / "learning-curve.yaml")
        config = load_config(*files)
        assert config["study"]["subjects"], path


def test_variants_are_overlays_on_the_default():
    """Another study stands alone; a variant of the simulated default holds only what differs from it."""
    assert not extends_default(load_yaml(REPO / "config" / "things-meg.yaml"))
    assert not extends_default(load_yaml(REPO / "config" / "nsd.yaml"))
    default = load_yaml(DEFAULT)
    for name in ("tiny", "nonlinear", "fmri-demo", "learning-curve"):
        overlay = load_yaml(REPO / "config" / f"{name}.yaml")
        assert extends_default(overlay), name
        assert _repeats(overlay, default) == [], name
    # the tiny learning curve is laid over the learning curve made tiny
    below = merge_configs(default, load_yaml(REPO / "config" / "learning-curve.yaml"), load_yaml(TINY))
    assert _repeats(load_yaml(REPO / "config" / "tiny-learning-curve.yaml"), below) == []


def _repeats(overlay: object, base: object, path: str = "") -> list[str]:
    """Keys whose overlay value equals the base's: copies of the default an overlay need not hold."""
    if not isinstance(overlay, dict) or not isinstance(base, dict):
        return [path] if overlay == base else []
    return [r for k, v in overlay.items() if k in base for r in _repeats(v, base[k], f"{path}.{k}")]


def test_overlays_merge_as_snakemake_merges():
    """Mappings merge key by key, lists replace, a backbone set to null is removed; default order first."""
    from snakemake.utils import update_config

    default, tiny = load_yaml(DEFAULT), load_yaml(TINY)
    expected = {}
    update_config(expected, default)
    update_config(expected, tiny)
    assert merge_configs(default, tiny) == expected
    config = load_config(DEFAULT, TINY)
    assert list(config["backbones"]) == ["colour_hist", "attributes", "dinov2_random"]  # hog: null removed
    assert config["study"]["subjects"] == ["01", "02"] and config["study"]["sessions"] == ["01", "02"]
    assert config["backbones"]["colour_hist"]["options"] == {
        "colour_bins": 4, "features": ["colour_histogram"], "image_size": 32,
    }  # fmt: skip
    assert load_yaml(DEFAULT)["backbones"]["hog"], "the inputs are not changed"


def test_defaults_are_filled_without_mutating_input():
    raw = {"study": {"subjects": ["01"]}}
    filled = validate_config(raw)
    assert filled["results_dir"] == "results"
    assert filled["study"]["task"] == "main"
    assert raw == {"study": {"subjects": ["01"]}}


def test_misspelled_key_is_rejected_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'subjets' in 'study': did you mean 'subjects'\?"):
        validate_config({"study": {"subjets": ["01"]}})
    with pytest.raises(ConfigError, match=r"did you mean 'seed'\?"):
        validate_config({"sede": 3})


@pytest.mark.parametrize("label", ["../01", "a/b", "01_x", ""])
def test_labels_reject_path_characters(label):
    with pytest.raises(ConfigError, match="study.subjects.0"):
        validate_config({"study": {"subjects": [label]}})


def test_workflow_fails_before_any_job_on_misspelled_key(tmp_path):
    bad = yaml.safe_load(TINY.read_text())
    bad["study"]["sesions"] = ["01"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = run_snakemake(tmp_path / "results", "-n", configfile=path, check=False)
    assert proc.returncode != 0
    assert "did you mean 'sessions'?" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_duplicate_yaml_key_is_rejected_with_both_lines(tmp_path):
    from megdecode.config import check_config_files

    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\nstudy:\n  subjects: ['01']\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: key 'seed' is given twice.*line 1 and line 4"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"dup.yaml: key 'seed'"):
        check_config_files([path])


def test_duplicate_backbone_labels_name_both_backbones():
    backbones = {
        "a": {"kind": "handcrafted", "label": "Colour"},
        "b": {"kind": "attributes", "label": "Colour"},
    }
    with pytest.raises(ConfigError, match=r"backbones 'a' and 'b' have the same label 'Colour'"):
        validate_config({"backbones": backbones})


def test_workflow_rejects_duplicate_keys_in_its_configfile(tmp_path):
    text = TINY.read_text()
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\n" + text + "\nseed: 7\n")
    proc = run_snakemake(tmp_path / "results", "-n", configfile=path, check=False)
    assert proc.returncode != 0
    assert "key 'seed' is given twice" in proc.stdout + proc.stderr


def test_exponent_without_dot_is_a_number():
    """YAML 1.1 reads 3e-4 as a string; where the schema asks for a number it is one."""
    raw = yaml.safe_load("training: {lr: 3e-4}")
    assert raw["training"]["lr"] == "3e-4"
    assert validate_config(raw)["training"]["lr"] == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="training.lr"):
        validate_config({"training": {"lr": "fast"}})


def test_key_order_does_not_change_params():
    """Snakemake compares params by repr: reordering keys without changing a value must not rerun jobs."""
    a = merge_configs(load_yaml(DEFAULT), load_yaml(TINY))
    del a["backbones"]["hog"]  # removed by the overlay (null)
    b = {
        k: (dict(reversed(list(v.items()))) if isinstance(v, dict) and k != "backbones" else v)
        for k, v in reversed(list(a.items()))
    }
    b["backbones"] = {k: dict(reversed(list(v.items()))) for k, v in a["backbones"].items()}
    va, vb = validate_config(a), validate_config(b)
    assert va == vb
    for key in va:
        assert repr(va[key]) == repr(vb[key]), key
    assert list(va["backbones"]) == list(a["backbones"])  # the tables' row order is kept


def test_reordered_config_leaves_nothing_to_rerun(tmp_path):
    """Snakemake sees the same params after keys are reordered with no value changed."""
    results = tmp_path / "results"
    target = str(results / "stimuli" / "stimuli.tsv")
    run_snakemake(results, target, cores=1)
    # the whole tiny config, keys of simulation.stimuli reversed, in place of the default (an overlay's keys
    # would be merged into the default's order)
    config = load_config(DEFAULT, TINY)
    stimuli = config["simulation"]["stimuli"]
    config["simulation"]["stimuli"] = dict(reversed(list(stimuli.items())))
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = run_snakemake(results, "-n", target, "--replace-workflow-config", configfile=reordered)
    assert "Nothing to be done" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]


@pytest.mark.parametrize(
    "overlays",
    [["tiny"], ["learning-curve", "tiny", "tiny-learning-curve"], ["things-meg"]],
    ids=["tiny", "tiny-learning-curve", "things-meg"],
)
def test_the_workflow_runs_on_what_load_config_returns(overlays, tmp_path, monkeypatch):
    """The workflow merges --configfile overlays (and --config values) over config.yaml exactly as load_config
    does, key order included; a config of another study stands alone."""
    files = [REPO / "config" / f"{name}.yaml" for name in overlays]
    results = str(tmp_path / "results")
    monkeypatch.chdir(REPO)
    with parsed_workflow(files, {"results_dir": results}) as workflow:
        got = workflow.globals["config"]
    expected = load_config(*([DEFAULT] if extends_default(load_yaml(files[0])) else []), *files)
    expected["results_dir"] = results
    assert repr(got) == repr(expected)
