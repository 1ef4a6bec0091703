"""Only the owner opens a file: outside ``megdecode.artifacts`` (and the ``io`` primitives it builds on), no
module of the package or script of the workflow reads a file itself; it calls the file's owner module.

The scan is static (AST): a call whose name reads a file (``read_tsv``, ``np.load``, ``open``, ...) is a
violation unless the name was imported from ``megdecode.artifacts`` or the module is in :data:`ALLOWED`, each
entry with its reason and the reader names it may call.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "megdecode"
SCRIPTS = REPO / "workflow" / "scripts"
#: the owners, and the safe primitives they call
OWNER_LAYER = ("artifacts/", "io.py")

#: names of calls that read a file (of any library: megdecode.io, pandas, numpy, json, PIL, mne, torch, ...)
READERS = frozenset(
    {
        "open",
        "read_tsv",
        "read_json",
        "load_npy",
        "load_npz",
        "read_csv",
        "read_table",
        "read_parquet",
        "read_text",
        "read_bytes",
        "load",
        "loadtxt",
        "genfromtxt",
        "fromfile",
        "loadmat",
        "memmap",
        "open_memmap",
        "read_epochs",
        "read_info",
        "read_evokeds",
        "read_raw",
        "read_raw_fif",
        "read_raw_ctf",
        "read_raw_bids",
        "load_file",
        "safe_open",
        "File",
    }
)

#: module (relative to src/megdecode, or a folder ending in /) -> (reader names it may call, why)
ALLOWED: dict[str, tuple[frozenset[str], str]] = {
    "datasets/": (
        READERS,
        "a real dataset's own files (THINGS-MEG, NSD), read by its reader; no stage wrote them",
    ),
    "recording.py": (
        frozenset({"read_raw"}),
        "the one reader of raw MEG recordings (FIF, CTF), for every stage",
    ),
    "preprocessing/reader.py": (
        frozenset({"read_tsv"}),
        "the BIDS run reader: events.tsv and channels.tsv of a BIDS tree (a standard format, written through "
        "mne-bids or by a dataset's authors)",
    ),
    "online/replay.py": (
        frozenset({"read_tsv"}),
        "the replayed runs' BIDS events.tsv (as preprocessing/reader)",
    ),
    "online/cli.py": (
        frozenset({"read_tsv"}),
        "a replayed run's BIDS events.tsv given on the command line (as preprocessing/reader)",
    ),
    "online/trial_log.py": (
        frozenset({"open", "read_tsv"}),
        "the owner of a live session's per-trial log (written and fsynced trial by trial, read back)",
    ),
    "online/live_view.py": (
        frozenset({"read_bytes"}),
        "stimulus image files served as they are to the browser of the live view",
    ),
    "metrics/extractors.py": (
        frozenset({"load"}),
        "pretrained feature-network weights installed by the user (weights_only), not a stage's output",
    ),
    "online/lsl.py": (
        frozenset({"read_raw"}),
        "any recording file played as a live stream, not a stage's output",
    ),
    "config.py": (frozenset({"open", "load"}), "configuration files (YAML), not stage outputs"),
    "logs.py": (frozenset({"open"}), "the job's own log file"),
    "run_lock.py": (
        frozenset({"read_text"}),
        "its own lock file, and /proc to see whether its owner still runs",
    ),
    "training/checkpoint.py": (
        frozenset({"load"}),
        "one job's private resume state, never read by another job",
    ),
    "preprocessing/qc.py": (
        frozenset({"read_text"}),
        "the report it has just written, stamped out before publishing",
    ),
}


def _artifact_names(tree: ast.Module) -> set[str]:
    """Names bound to ``megdecode.artifacts`` (its modules, or functions imported from them)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("megdecode.artifacts"):
            names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {
                alias.asname
                for alias in node.names
                if alias.asname and alias.name.startswith("megdecode.artifacts")
            }
    return names


def _call_name(call: ast.Call) -> tuple[str | None, str | None]:
    """(called name, the name it is an attribute of) of ``f(...)`` / ``x.f(...)``."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id, None
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return func.attr, owner
    return None, None


def file_reads(source: str) -> list[tuple[int, str, str]]:
    """(line, reader name, call) of every call in ``source`` that reads a file without the owner."""
    tree = ast.parse(source)
    owned = _artifact_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name, owner = _call_name(node)
        if name not in READERS or (owner or name) in owned:
            continue
        found.append((node.lineno, name, ast.unparse(node)[:80]))
    return sorted(found)


def _allowance(relative: str) -> tuple[str, frozenset[str]] | None:
    for key, (names, _) in ALLOWED.items():
        if relative == key or (key.endswith("/") and relative.startswith(key)):
            return key, names
    return None


def _sources() -> list[tuple[str, Path]]:
    modules = [
        (p.relative_to(PACKAGE).as_posix(), p)
        for p in sorted(PACKAGE.rglob("*.py"))
        if not p.relative_to(PACKAGE).as_posix().startswith(OWNER_LAYER)
    ]
    return modules + [(f"workflow/scripts/{p.name}", p) for p in sorted(SCRIPTS.glob("*.py"))]


def test_only_owners_open_files() -> None:
    violations, used = [], set()
    for relative, path in _sources():
        allowance = _allowance(relative)
        for line, name, call in file_reads(path.read_text()):
            if allowance is not None and name in allowance[1]:
                used.add(allowance[0])
                continue
            violations.append(f"{relative}:{line}: {call}")
    assert not violations, (
        "files read outside their owner module (read them through megdecode.artifacts, or add the module to "
        "ALLOWED with the reason):\n" + "\n".join(violations)
    )
    assert used == set(ALLOWED), f"allow-list entries no longer needed: {sorted(set(ALLOWED) - used)}"


PLANTED = """
import json
import numpy as np
from megdecode.io import read_tsv
from megdecode.artifacts.stimuli import read_stimuli
from megdecode.artifacts import preprocessed


def stage(path):
    table = read_stimuli(path)  # the owner: fine
    subject = preprocessed.read_subject(path)  # the owner: fine
    trials = read_tsv(path)  # a file read past its owner
    codes = json.load(open(path))  # two more
    return np.load(path), table, subject, trials, codes
"""


def test_a_planted_read_is_found() -> None:
    assert [(name, line) for line, name, _ in file_reads(PLANTED)] == [
        ("read_tsv", 12),
        ("load", 13),
        ("open", 13),
        ("load", 14),
    ]


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_allowed_modules_exist(module: str) -> None:
    assert (PACKAGE / module).exists(), f"ALLOWED names {module}, which is not in src/megdecode"
