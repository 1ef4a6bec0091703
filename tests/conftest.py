"""Shared test fixtures: offline environment, the repository root, and workflow runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# `@pytest.mark.netns` tests run in a child pytest inside a private network namespace (tests/netns.py)
from netns import pytest_pyfunc_call  # noqa: F401

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
THINGS_MEG = SHARED / "things-meg"


def brain_config(**changes: object):
    """A BrainModuleConfig from the schema's defaults plus ``changes`` (defaults live in the schema only)."""
    from megdecode.config import section_defaults
    from megdecode.models import BrainModuleConfig

    return BrainModuleConfig.from_dict({**section_defaults("brain_module"), **changes})


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (tiny models and batch-1 decoding are fastest on one; the CI
    cores are shared); the previous count is restored after the module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def snakemake_cmd() -> list[str]:
    """The snakemake of this interpreter's environment."""
    return [sys.executable, "-m", "snakemake"]


def run_snakemake(
    results_dir: Path,
    *args: str,
    configfile: Path | str = REPO / "config" / "tiny.yaml",
    cores: int = 2,
    timeout: float = 1200,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the workflow from the repository root with outputs under ``results_dir``."""
    # "--opt=value": --configfile/--config take several values and would otherwise swallow targets in args
    cmd = [
        *snakemake_cmd(),
        "--cores",
        str(cores),
        f"--configfile={configfile}",
        f"--config=results_dir={results_dir}",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `all` once on config/tiny.yaml; every end-to-end test reads these outputs."""
    results = tmp_path_factory.mktemp("tiny") / "results"
    run_snakemake(results, "all")
    return results


@pytest.fixture
def things_meg() -> Path:
    """The real THINGS-MEG metadata beside the checkout; skips cleanly when absent."""
    if not (THINGS_MEG / "ds004212").is_dir():
        pytest.skip(f"real THINGS-MEG metadata not found at {THINGS_MEG} (CI provides ../shared)")
    return THINGS_MEG


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slurm` tests are opt-in: they run only with MEGDECODE_TEST_SLURM=1 (CI sets it)."""
    if os.environ.get("MEGDECODE_TEST_SLURM") == "1":
        return
    skip = pytest.mark.skip(
        reason="SLURM test is opt-in: set MEGDECODE_TEST_SLURM=1 (needs root for apt-get)"
    )
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)
