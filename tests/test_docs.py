"""The docs run as written: every fenced bash and python block of README.md and docs/**/*.md, executed on the
tiny data.

How a block is run (write docs so that these hold):

- bash blocks run with ``bash -euo pipefail`` in a scratch copy of the checkout, this environment's
  ``bin`` first on PATH (write ``snakemake``, ``python``, ``megdecode``, not ``.venv/bin/...``). Install
  lines (starting with ``python3 -m venv``, ``pip install`` or ``.venv/bin/pip install``) are skipped: CI
  installs with the README's test command.
- every ``snakemake`` command gets ``config/tiny.yaml`` appended as its last overlay (and
  ``config/tiny-learning-curve.yaml`` after it when it asks for the ``learning_curve`` target), so write
  commands that are right for users, targets before ``--configfile``:
  ``snakemake --cores 2 all --configfile config/nonlinear.yaml``.
- python blocks run as scripts in that copy, after ``snakemake --cores 2 all --configfile config/tiny.yaml``
  has run there (``results/`` holds the tiny config's outputs). A block is complete (its imports, no
  undefined names, no placeholders) and finishes in seconds.
- a block that cannot run in CI (the real dataset, a GPU, a SLURM cluster, a live device, hours) follows a
  line ``<!-- docs-test: skip (reason) -->``; the reason is reported as the test's skip reason.
- blocks in other languages (yaml, text, tsv, ...) are not run, and every block names its language.

The copy starts from the session's tiny runs (``tiny_workdir`` and ``tiny_learning_curve`` in conftest.py,
made with the same commands), so a block that repeats one of them finds nothing to do; blocks share the
copy, in the order the files and blocks come.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUN_LANGUAGES = ("bash", "python")
SKIP_MARK = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>.+)\)\s*-->\s*$")
INSTALL_LINE = re.compile(r"^(python3 -m venv|pip install|\.venv/bin/pip install)\b")
SNAKEMAKE_LINE = re.compile(r"^snakemake(\s|$)")
CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")
TINY_OVERLAYS = ["config/tiny.yaml"]
#: extra tiny overlays for a target, after config/tiny.yaml
TINY_TARGET_OVERLAYS = {
    "learning_curve": ["config/tiny-learning-curve.yaml"],
    "recipe_study": ["config/tiny-recipe-study.yaml"],
}
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[^`\s]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    skip_reason: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path`` in order, each with the skip reason of a marker on the line before it."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = SKIP_MARK.search(before.strip())
        body = "\n".join(line.removeprefix(match["indent"]) for line in match["body"].splitlines())
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(path, line, match["lang"], body + "\n", marker["reason"] if marker else None))
    return blocks


def logical_lines(code: str) -> list[str]:
    """Lines of a shell script with backslash continuations joined."""
    lines, pending = [], []
    for raw in code.splitlines():
        piece = raw.strip() if pending else raw.rstrip()
        if piece.endswith("\\"):
            pending.append(piece[:-1].rstrip())
            continue
        lines.append(" ".join([*pending, piece]))
        pending = []
    if pending:
        lines.append(" ".join(pending))
    return lines


def with_tiny_overlays(command: str) -> str:
    """A ``snakemake`` command line with the tiny overlays appended as its last config files.

    Snakemake keeps only the last ``--configfile`` option (several files go in one), so the files of the last
    one are kept and the tiny ones follow them in a single ``--configfile`` at the end.
    """
    words = shlex.split(command, comments=True)
    if not words or words[0] != "snakemake":
        raise ValueError(f"not a snakemake command: {command!r}")
    if any(w in ("&&", "||", "|", ";", "&") or w.endswith(";") for w in words):
        raise ValueError(f"write one snakemake command per line, without shell operators: {command!r}")
    kept, configfiles, i = [], [], 0
    while i < len(words):
        word = words[i]
        option, _, value = word.partition("=")
        if option in CONFIGFILE_OPTIONS:
            configfiles = [value] if value else []
            i += 1
            while not value and i < len(words) and not words[i].startswith("-"):
                configfiles.append(words[i])
                i += 1
            continue
        kept.append(word)
        i += 1
    overlays = TINY_OVERLAYS + [
        f for target, extra in TINY_TARGET_OVERLAYS.items() if target in kept for f in extra
    ]
    return shlex.join([*kept, "--configfile", *configfiles, *overlays])


def bash_script(code: str) -> str:
    """The block as CI runs it: install lines dropped, each snakemake command made tiny."""
    out = []
    for line in logical_lines(code):
        stripped = line.strip()
        if INSTALL_LINE.match(stripped):
            continue
        out.append(with_tiny_overlays(stripped) if SNAKEMAKE_LINE.match(stripped) else line)
    return "\n".join(out) + "\n"


def runnable(code: str) -> bool:
    """Whether a bash block has anything left to run once install lines and comments are dropped."""
    return any(line.strip() and not line.strip().startswith("#") for line in bash_script(code).splitlines())


def skip_reason(block: Block) -> str | None:
    """Why CI does not run ``block`` (its marker's reason, or only install lines), or None."""
    if block.skip_reason:
        return f"{block.name}: {block.skip_reason}"
    if block.language == "bash" and not runnable(block.code):
        return f"{block.name}: install command (CI installs with the README's test command)"
    return None


ALL_BLOCKS = [block for path in DOC_FILES for block in extract_blocks(path)]
RUN_BLOCKS = [
    pytest.param(
        block, id=block.name, marks=[pytest.mark.skip(reason=why)] if (why := skip_reason(block)) else []
    )
    for block in ALL_BLOCKS
    if block.language in RUN_LANGUAGES
]


# ---------------------------------------------------------------------------- the runner's own rules (fast)

#: how the project's work was organised, which its docs do not speak of
NOT_THE_PROJECT = re.compile(
    r"\bissues? #?\d+|\bthe issue\b|\b(?:this|the previous|previous) session\b|\bagents?\b"
    r"|device machine|was lent",
    re.IGNORECASE,
)


def test_ci_runs_the_readme_commands_as_written():
    """The README's two commands (install and run the workflow; install and run the tests) are one line each,
    and CI (.ci/run) runs the test command as written."""
    readme = [b for b in ALL_BLOCKS if b.path.name == "README.md" and b.language == "bash"]
    install = [b.code.strip() for b in readme if INSTALL_LINE.match(b.code.strip())]
    assert len(install) == 2 and install[0].endswith("snakemake --cores 2 all"), install
    assert install[1].endswith(".venv/bin/python -m pytest"), install
    assert install[1] in (REPO / ".ci" / "run").read_text().splitlines()


def test_docs_speak_of_the_project_only():
    """No issue numbers, work sessions, agents or lent machines: facts about the project only."""
    found = [
        f"{path.relative_to(REPO)}:{i + 1}: {match.group(0)!r}"
        for path in DOC_FILES
        for i, line in enumerate(path.read_text().splitlines())
        if (match := NOT_THE_PROJECT.search(line))
    ]
    assert not found, found


def test_every_block_names_its_language():
    """An unnamed block could hide a command from this runner: ```bash, ```python, ```yaml, ```text, ..."""
    unnamed = [block.name for block in ALL_BLOCKS if not block.language]
    assert not unnamed, f"fenced blocks without a language: {unnamed}"


def test_skip_markers_give_a_reason_and_stand_before_a_block():
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "docs-test:" in line:
                assert SKIP_MARK.search(line.strip()), (
                    f"{path.name}:{i + 1}: write <!-- docs-test: skip (reason) -->"
                )
                following = lines[i + 1] if i + 1 < len(lines) else ""
                assert following.lstrip().startswith("```"), (
                    f"{path.name}:{i + 1}: the marker must precede a block"
                )


def test_snakemake_commands_get_the_tiny_overlays_last():
    tiny = "config/tiny.yaml"
    assert with_tiny_overlays("snakemake --cores 2 all") == f"snakemake --cores 2 all --configfile {tiny}"
    assert (
        with_tiny_overlays("snakemake --cores 2 all --configfile config/nonlinear.yaml  # comment")
        == f"snakemake --cores 2 all --configfile config/nonlinear.yaml {tiny}"
    )
    # several files, the = form, and options after them
    lc_tiny = TINY_TARGET_OVERLAYS["learning_curve"][0]
    assert with_tiny_overlays("snakemake learning_curve --configfile a.yaml b.yaml --cores 2") == (
        f"snakemake learning_curve --cores 2 --configfile a.yaml b.yaml {tiny} {lc_tiny}"
    )
    assert (
        with_tiny_overlays("snakemake --configfile=a.yaml -n all")
        == f"snakemake -n all --configfile a.yaml {tiny}"
    )
    # Snakemake keeps the last --configfile only: so does the runner
    assert with_tiny_overlays("snakemake --configfile a.yaml --configfile b.yaml") == (
        f"snakemake --configfile b.yaml {tiny}"
    )
    with pytest.raises(ValueError, match="one snakemake command per line"):
        with_tiny_overlays("snakemake all && ls")


def test_blocks_are_found_with_their_skip_reasons(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n\n```bash\nsnakemake --cores 2 all\n```\n\n<!-- docs-test: skip (needs a GPU) -->\n"
        "```python\nimport torch\n```\n\n- item:\n\n"
        "  ```bash\n  python3 -m venv .venv && .venv/bin/pip install -e .\n  ```\n"
    )
    first, second, third = extract_blocks(doc)
    assert (first.line, first.language, first.skip_reason) == (3, "bash", None)
    assert (second.language, second.code, second.skip_reason) == ("python", "import torch\n", "needs a GPU")
    assert third.code.startswith("python3 -m venv") and not runnable(third.code)
    assert (
        bash_script("ls \\\n  -l\nsnakemake all\n")
        == f"ls -l\nsnakemake all --configfile {TINY_OVERLAYS[0]}\n"
    )


# ---------------------------------------------------------------------------- the blocks themselves (slow)


@pytest.fixture(scope="module")
def docs_workdir(
    tiny_workdir: Path, tiny_learning_curve: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the session's scratch checkout with its tiny runs (outputs and Snakemake's records)."""
    workdir = tmp_path_factory.mktemp("docs") / "megdecode"
    shutil.copytree(tiny_workdir, workdir, symlinks=True)
    return workdir


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN_BLOCKS)
def test_doc_block_runs_as_written(block: Block, docs_workdir: Path, tmp_path: Path):
    if block.language == "bash":
        script = tmp_path / "block.sh"
        script.write_text(bash_script(block.code))
        cmd = ["bash", "-euo", "pipefail", str(script)]
        timeout = 900
    else:
        script = tmp_path / "block.py"
        script.write_text(block.code)
        cmd = [sys.executable, str(script)]
        timeout = 300
    proc = subprocess.run(
        cmd, cwd=docs_workdir, env=_environment(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{block.name} failed (exit {proc.returncode}); as run:\n{script.read_text()}\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"
    )
