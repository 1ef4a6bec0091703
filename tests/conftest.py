"""Shared test fixtures: offline environment, the repository root, and workflow runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def study_with_renders(n_train_concepts: int, n_test_concepts: int, exemplars_per_test_concept: int):
    """A small simulated study for the ceilings' tests: (params, stimuli table, truth, test concept -> its
    fresh renders' features), 4 exemplars per training concept, 32-px images, 40 renders per test concept."""
    from megdecode.config import section_defaults
    from megdecode.learning_curve.oracle import concept_render_features
    from megdecode.simulate.params import SimulationParams
    from megdecode.simulate.stimuli import build_stimuli

    cfg = section_defaults("simulation")
    cfg["stimuli"].update(n_train_concepts=n_train_concepts, n_test_concepts=n_test_concepts)
    cfg["stimuli"].update(
        exemplars_per_train_concept=4, exemplars_per_test_concept=exemplars_per_test_concept, image_size=32
    )
    params = SimulationParams.from_config(cfg)
    table, _, truth = build_stimuli(params, 0)
    test = table[(table.role != "catch") & (table.concept_split == "test")].drop_duplicates("concept")
    renders = concept_render_features(test, 40, 32, 0)
    by_concept = {c: part[part.columns[2:]].to_numpy(float) for c, part in renders.groupby("concept")}
    return params, table, truth, by_concept


def random_ceiling_parts(rng):
    """A random noise model (4 channels, 3 times) with an evoked response and early (2) and late (3) code
    patterns, drawn from ``rng`` in that order: the fair ceiling's inputs for likelihood tests."""
    import numpy as np

    from megdecode.learning_curve.epochs import NoiseModel

    lags = np.arange(3) / 10.0
    noise = NoiseModel(
        rng.standard_normal((4, 2)), np.exp(-np.abs(np.subtract.outer(lags, lags)) / 0.15), 0.3
    )
    evoked, early, late = (
        rng.standard_normal((4, 3)),
        rng.standard_normal((2, 4, 3)),
        rng.standard_normal((3, 4, 3)),
    )
    return noise, evoked, early, late


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
    return _run(cmd, REPO, timeout, check)


@contextmanager
def parsed_workflow(configfiles: list[Path], config: dict[str, object]) -> Iterator[Any]:
    """Snakemake's ``Workflow`` of this repository, parsed with these ``--configfile`` overlays and
    ``--config`` values (rules, resources and the Snakefile's globals: ``config``, ``PLAN``), nothing run."""
    from snakemake.api import (
        ConfigSettings,
        DeploymentSettings,
        OutputSettings,
        ResourceSettings,
        SnakemakeApi,
        StorageSettings,
        WorkflowSettings,
    )

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        yield api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=configfiles, config=config),
            storage_settings=StorageSettings(),
            workflow_settings=WorkflowSettings(),
            deployment_settings=DeploymentSettings(),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )._workflow


def snakemake_in(
    workdir: Path, *args: str, timeout: float = 1200, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``snakemake *args`` in ``workdir`` (a scratch copy of the checkout), as a user would type it."""
    return _run([*snakemake_cmd(), *args], workdir, timeout, check)


def _run(cmd: list[str], cwd: Path, timeout: float, check: bool) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def scratch_copy(dest: Path) -> Path:
    """A copy of the checkout at ``dest``: the files git tracks and the untracked ones it does not ignore
    (no venv, no results). Outside a git checkout, every file but those."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.split("\0")):
            source = REPO / name
            if source.is_file():  # a tracked file deleted in the working tree is listed too
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    else:
        ignored = shutil.ignore_patterns(
            ".git", ".venv", "results*", ".snakemake", "__pycache__", "*.egg-info"
        )
        shutil.copytree(REPO, dest, ignore=ignored, dirs_exist_ok=True)
    return dest


# The tiny runs every end-to-end test reads, made once per session in a scratch copy of the checkout, typed
# as a user types them (the docs' convention, tests/test_docs.py); outputs in the copy's results*/ folders.
TINY_ALL = ("--cores", "2", "all", "--configfile", "config/tiny.yaml")
TINY_LEARNING_CURVE = (
    "--cores", "2", "learning_curve",
    "--configfile", "config/learning-curve.yaml", "config/tiny.yaml", "config/tiny-learning-curve.yaml",
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the checkout in which `snakemake --cores 2 all --configfile config/tiny.yaml` ran."""
    workdir = scratch_copy(tmp_path_factory.mktemp("tiny") / "megdecode")
    snakemake_in(workdir, *TINY_ALL)
    return workdir


@pytest.fixture(scope="session")
def tiny_results(tiny_workdir: Path) -> Path:
    """The outputs of `all` on config/tiny.yaml; every end-to-end test reads them."""
    return tiny_workdir / "results"


@pytest.fixture(scope="session")
def tiny_learning_curve(tiny_workdir: Path) -> Path:
    """The outputs of the learning curve's command (config/learning-curve.yaml) made tiny by config/tiny.yaml
    and config/tiny-learning-curve.yaml, run in the same scratch copy (its own results folder)."""
    snakemake_in(tiny_workdir, *TINY_LEARNING_CURVE)
    return tiny_workdir / "results-learning-curve"


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
