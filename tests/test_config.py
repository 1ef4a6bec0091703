"""Schema validation: defaults, unknown keys with suggestions, label patterns."""

from __future__ import annotations

import re

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


#: overlays made to lie over another variant
LAID_OVER = {
    "learning-curve-longer.yaml": "learning-curve.yaml",
    "learning-curve-eeg.yaml": "learning-curve.yaml",
    "tiny-learning-curve.yaml": "learning-curve.yaml",
    "tiny-recipe-study.yaml": "recipe-study.yaml",
}


def test_default_and_tiny_configs_are_valid():
    for path in sorted((REPO / "config").glob("*.yaml")):
        files = [DEFAULT, path] if extends_default(load_yaml(path)) else [path]
        if path.name in LAID_OVER:  # a probe or a tiny version of another variant
            files.insert(1, REPO / "config" / LAID_OVER[path.name])
        config = load_config(*files)
        assert config["study"]["subjects"], path


def test_variants_are_overlays_on_the_default():
    """Another study stands alone; a variant of the simulated default holds only what differs from it."""
    assert not extends_default(load_yaml(REPO / "config" / "things-meg.yaml"))
    assert not extends_default(load_yaml(REPO / "config" / "nsd.yaml"))
    default = load_yaml(DEFAULT)
    for name in (
        "tiny",
        "nonlinear",
        "fmri-demo",
        "learning-curve",
        "recipe-study",
        "things-eeg2",
        "eeg-demo",
    ):
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
    assert f"(set in {path})" in proc.stdout + proc.stderr  # the file the bad key comes from
    assert not (tmp_path / "results").exists()


def test_duplicate_yaml_key_is_rejected_with_both_lines(tmp_path):
    from megdecode.config import validate_workflow_config

    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\nstudy:\n  subjects: ['01']\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: key 'seed' is given twice.*line 1 and line 4"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"dup.yaml: key 'seed'"):
        validate_workflow_config([path], None)


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


def test_schema_errors_name_the_config_file_or_the_command_line(tmp_path):
    from megdecode.config import validate_workflow_config

    base, overlay = tmp_path / "base.yaml", tmp_path / "overlay.yaml"
    base.write_text("seed: 1\nstudy:\n  subjects: ['01']\n")
    overlay.write_text("study:\n  subjets: ['02']\n")
    overrides = {"sede": 3, "seed": "x"}
    with pytest.raises(ConfigError) as err:
        validate_workflow_config([base, overlay], overrides)
    msg = str(err.value)
    assert f"unknown key 'subjets' in 'study': did you mean 'subjects'? (set in {overlay})" in msg
    assert "unknown key 'sede' in '<top level>': did you mean 'seed'? (set in --config)" in msg
    assert "'seed': 'x' is not of type 'integer' (set in --config)" in msg
    assert f"invalid config from {base}, {overlay} and --config" in msg


@pytest.mark.parametrize("folder", ["my results", "results\tnew", " results"])
def test_results_dir_with_whitespace_is_refused_in_words(folder):
    with pytest.raises(ConfigError) as err:
        validate_config({"results_dir": folder})
    msg = str(err.value)
    assert f"'results_dir': {folder!r} contains whitespace" in msg and "without spaces" in msg
    assert "does not match" not in msg and "\\S" not in msg


@pytest.mark.parametrize(("config", "words"), [
    ({"study": {"subjects": ["0-1"]}}, "'study.subjects.0': '0-1' may contain only letters and digits"),
    ({"backbones": {"a b": {"kind": "attributes"}}}, "may contain only letters, digits and underscores"),
])  # fmt: skip
def test_label_patterns_are_said_in_words(config, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        validate_config(config)


def test_interpreter_path_with_a_space_is_refused_in_one_sentence():
    from megdecode.config import check_interpreter_path

    with pytest.raises(ConfigError) as err:
        check_interpreter_path("/home/me/sp ace ü é/megdecode/.venv/bin/python")
    msg = str(err.value)
    assert "/home/me/sp ace ü é/megdecode/.venv/bin/python" in msg and "space" in msg
    assert msg.count(". ") == 0 and msg.endswith(".")  # one plain sentence
    check_interpreter_path("/home/me/ü_é/megdecode/.venv/bin/python")  # letters outside ASCII are fine


def _copy_checkout(dst):
    """The working tree (no venv, results, git or Snakemake state) copied to ``dst``."""
    import shutil

    ignore = shutil.ignore_patterns(".venv", ".git", ".snakemake", "results", "__pycache__", "*.egg-info")
    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def _venv(path):
    """A virtual environment at ``path`` that sees this environment's packages (no pip: fast)."""
    import site
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (purelib,) = {p for p in site.getsitepackages() if p.endswith("site-packages")}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (path / "lib" / version / "site-packages" / "deps.pth").write_text(f"{purelib}\n{REPO / 'src'}\n")
    return path / "bin" / "python"


def test_checkout_in_a_folder_with_a_space_refuses_at_start_or_runs(tmp_path):
    """A clone in 'sp ace ü é' with its venv inside: every job used to exit 127 ('.../sp: No such file')."""
    import subprocess

    checkout = _copy_checkout(tmp_path / "sp ace ü é" / "megdecode")
    results = tmp_path / "results"
    target = str(results / "stimuli" / "stimuli.tsv")
    args = ["-m", "snakemake", "--cores", "1", target, "--configfile=config/tiny.yaml"]
    args.append(f"--config=results_dir={results}")
    python = _venv(checkout / ".venv")
    proc = subprocess.run([python, *args], cwd=checkout, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"The Python interpreter {python}" in out, out[-3000:]
    assert "No such file" not in out and not results.exists()
    # the same checkout with an environment in a folder without spaces runs
    python = _venv(tmp_path / "venv")
    proc = subprocess.run([python, *args], cwd=checkout, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (results / "stimuli" / "stimuli.tsv").is_file()


@pytest.mark.parametrize(
    "overlays",
    [["tiny"], ["learning-curve", "tiny", "tiny-learning-curve"], ["things-meg"]],
    ids=["tiny", "tiny-learning-curve", "things-meg"],
)
def test_the_workflow_runs_on_what_load_config_returns(overlays, tmp_path, monkeypatch):
    """The workflow merges --configfile overlays (and --config values) over config.yaml exactly as load_config
    does, key order included; a config of another study stands alone."""
    files = [REPO / "config" / f"{name}.yaml" for name in overlays]
    overrides: dict = {"results_dir": str(tmp_path / "results")}
    if overlays == ["things-meg"]:  # the workflow reads the dataset's inventory: a one-run layout twin of it
        from conftest import THINGS_MEG
        from things_twin import TwinSpec, make_layout_twin

        if not (THINGS_MEG / "ds004212").is_dir():
            pytest.skip(f"real THINGS-MEG metadata not found at {THINGS_MEG} (CI provides ../shared)")
        spec = TwinSpec(["BIGMEG1"], ["01"], ["01"], recording="empty_ds")
        twin = make_layout_twin(THINGS_MEG / "ds004212", tmp_path / "ds004212", spec)
        study = dict(bids_root=str(twin), subjects=["BIGMEG1"], sessions=["01"], runs=["01"])
        overrides["study"] = study | {"image_table": str(THINGS_MEG / "things" / "things_meg_images.tsv")}
    monkeypatch.chdir(REPO)
    with parsed_workflow(files, overrides) as workflow:
        got = workflow.globals["config"]
    base = [DEFAULT] if extends_default(load_yaml(files[0])) else []
    expected = validate_config(merge_configs(*(load_yaml(f) for f in [*base, *files]), overrides))
    assert repr(got) == repr(expected)
