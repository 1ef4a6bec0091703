"""Schema validation: defaults, unknown keys with suggestions, label patterns."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, run_snakemake

from megdecode.config import ConfigError, load_config, validate_config


def test_default_and_tiny_configs_are_valid():
    for path in [REPO / "config.yaml", *sorted((REPO / "config").glob("*.yaml"))]:
        config = load_config(path)
        assert config["study"]["subjects"], path


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
    bad = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    bad["study"]["sesions"] = bad["study"].pop("sessions")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = run_snakemake(tmp_path / "results", "-n", configfile=path, check=False)
    assert proc.returncode != 0
    assert "did you mean 'sessions'?" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
