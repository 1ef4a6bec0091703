"""Socket tests in a private network namespace with only loopback up (Linux, as root).

Mark a module-level test function (or a whole module) ``@pytest.mark.netns``. The conftest hook
(``pytest_pyfunc_call`` below) then never runs its body in the session's own namespace: the first marked
test of a module starts one child pytest, inside ``unshare --net`` after ``ip link set lo up``, on all the
marked tests of that module that were selected, and each marked test reports its child's outcome (passed,
skipped with the child's reason, or failed with the child's report). In the child, each marked test first
checks that ``lo`` is the namespace's only interface. Where no namespace can be made (not root, no
``unshare``/``ip``, not Linux), the marked tests skip and say why. The child is bounded: a hard timeout,
and a traceback dump just before it.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

INSIDE_ENV = "MEGDECODE_IN_NETNS"
CHILD_TIMEOUT_S = 180.0
_LO_UP = 'ip link set lo up && exec "$@"'


def inside() -> bool:
    """True in the child pytest that runs inside the namespace."""
    return os.environ.get(INSIDE_ENV) == "1"


def interfaces() -> list[str]:
    """Network interfaces of this process's namespace (netlink; /sys/class/net would show the host's)."""
    return sorted(name for _, name in socket.if_nameindex())


def isolated_command(argv: Sequence[str]) -> list[str]:
    """``argv`` run in a new network namespace after bringing its loopback up."""
    return ["unshare", "--net", "--", "sh", "-c", _LO_UP, "netns", *argv]


@functools.cache
def unavailable_reason() -> str | None:
    """Why no private network namespace can be made here, or None when one can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "unshare --net needs root"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    try:
        proc = subprocess.run(
            isolated_command(["ip", "-o", "link"]), capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare --net failed: {err}"
    if proc.returncode != 0:
        return f"unshare --net failed: {proc.stderr.strip()[-300:]}"
    return None


def run_isolated(
    argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a new network namespace with only ``lo`` up; killed after ``timeout`` seconds."""
    child_env = {**os.environ, **(env or {}), INSIDE_ENV: "1"}
    return subprocess.run(
        isolated_command(argv), capture_output=True, text=True, timeout=timeout, env=child_env, cwd=cwd
    )


def check_isolated() -> None:
    """Fail unless this process is in a namespace whose only interface is ``lo``."""
    found = interfaces()
    if found != ["lo"]:
        pytest.fail(f"not isolated: the namespace has interfaces {found}, expected only ['lo']")


@dataclass(frozen=True)
class Outcome:
    status: str  # passed | skipped | failed
    detail: str = ""


_outcomes: dict[Path, dict[str, Outcome]] = {}


def _run_child(item: pytest.Item) -> dict[str, Outcome]:
    """Run the selected marked tests of ``item``'s module in one child pytest inside a namespace."""
    module = Path(item.path)
    node_ids = [
        other.nodeid
        for other in item.session.items
        if Path(other.path) == module and other.get_closest_marker("netns") is not None
    ]
    with tempfile.TemporaryDirectory(prefix="netns-") as tmp:
        report = Path(tmp) / "report.xml"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            *node_ids,
            "-q",
            "-o",
            # a stuck test dumps its tracebacks before the child is killed
            f"faulthandler_timeout={CHILD_TIMEOUT_S / 2:g}",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            f"--basetemp={Path(tmp) / 'basetemp'}",
        ]
        try:
            proc = run_isolated(argv, timeout=CHILD_TIMEOUT_S, cwd=item.config.rootpath)
            output = proc.stdout[-6000:] + proc.stderr[-3000:]
        except subprocess.TimeoutExpired as err:
            text = (err.stdout or b"")[-6000:]
            failed = Outcome("failed", f"child pytest killed after {CHILD_TIMEOUT_S:g} s:\n{text!r}")
            return {other.split("::")[-1]: failed for other in node_ids}
        if not report.exists():
            crashed = Outcome("failed", f"child pytest wrote no report (exit {proc.returncode}):\n{output}")
            return {other.split("::")[-1]: crashed for other in node_ids}
        outcomes: dict[str, Outcome] = {}
        for case in ET.parse(report).getroot().iter("testcase"):
            problems = [*case.iter("failure"), *case.iter("error")]
            skips = list(case.iter("skipped"))
            if problems:
                detail = "\n".join(f"{p.get('message', '')}\n{p.text or ''}" for p in problems)
                outcomes[case.get("name", "")] = Outcome("failed", detail)
            elif skips:
                outcomes[case.get("name", "")] = Outcome("skipped", skips[0].get("message", ""))
            else:
                outcomes[case.get("name", "")] = Outcome("passed")
        missing = Outcome("failed", f"the child pytest did not report this test:\n{output}")
        return {other.split("::")[-1]: outcomes.get(other.split("::")[-1], missing) for other in node_ids}


def forward(item: pytest.Item) -> None:
    """Report, as ``item``'s outcome, that of the same test run in the namespace (run once per module)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs a private network namespace: {reason}")
    module = Path(item.path)
    if module not in _outcomes:
        _outcomes[module] = _run_child(item)
    outcome = _outcomes[module][item.name]
    if outcome.status == "skipped":
        pytest.skip(f"in the network namespace: {outcome.detail}")
    if outcome.status == "failed":
        pytest.fail(f"in the network namespace:\n{outcome.detail}", pytrace=False)


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Hook (re-exported by conftest.py): run ``netns``-marked tests in the namespace only."""
    if pyfuncitem.get_closest_marker("netns") is None:
        return None
    if inside():
        check_isolated()
        return None  # pytest calls the test function
    forward(pyfuncitem)
    return True
