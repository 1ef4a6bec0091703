"""Structure of the workflow itself: every rule declares what a cluster and a reader need; envs match pins."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from conftest import REPO

RULE_FILES = sorted((REPO / "rules").glob("*.smk"))
REQUIRED = ("log:", "benchmark:", "threads:", "mem_mb=", "runtime=", "conda:")


def rule_blocks() -> dict[str, str]:
    """Text of each `rule name:` block (up to the next rule or end of file), keyed by rule name."""
    blocks = {}
    for path in RULE_FILES:
        text = path.read_text()
        starts = [(m.start(), m.group(1)) for m in re.finditer(r"^\s*rule (\w+):", text, flags=re.M)]
        ends = [start for start, _ in starts[1:]] + [len(text)] if starts else []
        for (start, name), end in zip(starts, ends, strict=True):
            blocks[name] = text[start:end]
    return blocks


def test_rule_files_exist_per_stage():
    stages = {p.stem for p in RULE_FILES}
    assert {
        "simulate",
        "bids",
        "preprocess",
        "latents",
        "train",
        "evaluate",
        "reconstruct",
        "report",
    } <= stages


@pytest.mark.parametrize("name", sorted(rule_blocks()))
def test_rule_declares_log_benchmark_and_resources(name):
    block = rule_blocks()[name]
    missing = [key for key in REQUIRED if key not in block]
    assert not missing, f"rule {name} lacks {missing}"
    assert "script:" in block, f"rule {name} must call one thin script"
    assert "params:" in block or "input:" in block


def test_conda_env_parses_and_pins_torch_like_pyproject():
    env = yaml.safe_load((REPO / "envs" / "megdecode.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert torch_pin == "torch==2.13.0"
    assert torch_pin in pip
    assert "-e .." in pip  # the package itself, with every pin of pyproject.toml
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.startswith("python=3.")
