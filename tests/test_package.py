"""The package works installed from a wheel, outside a checkout (a lab machine that runs only the online
decoder): the config schema ships inside it, so configs load and validate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

# run outside the checkout with only the installed wheel on the path (the dependencies from this environment)
CHECK = """
import sys
from pathlib import Path

import megdecode
from megdecode.config import ConfigError, load_config, section_defaults

site = Path(sys.argv[1])
assert Path(megdecode.__file__).is_relative_to(site), megdecode.__file__
config = load_config(Path("things.yaml"))
assert config["study"]["subjects"] == ["BIGMEG1"] and config["training"]["lr"] == 0.0003, config["training"]
assert section_defaults("brain_module")["hidden"] == 320
try:
    load_config(Path("misspelled.yaml"))
except ConfigError as err:
    assert "did you mean 'subjects'?" in str(err), err
else:
    raise AssertionError("a misspelled key was accepted")
print("ok", megdecode.__file__)
"""


def test_wheel_installed_outside_the_checkout_loads_configs(tmp_path: Path):
    source = _mkdir(tmp_path / "source")  # build from a copy: no build/ or egg-info in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--no-cache-dir"]
    # offline: no build isolation (setuptools from this environment), no dependencies
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("megdecode-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    schemas = {Path(n).name for n in names if n.startswith("megdecode/schemas/")}
    assert {p.name for p in (REPO / "src" / "megdecode" / "schemas").glob("*.schema.yaml")} == schemas
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    work = _mkdir(tmp_path / "elsewhere")
    (work / "things.yaml").write_text(
        "study: {source: bids, bids_root: data, subjects: [BIGMEG1]}\ntraining: {lr: 3e-4}\n"
    )
    (work / "misspelled.yaml").write_text("study: {subjets: ['01']}\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, str(site)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
