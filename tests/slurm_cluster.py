"""A throw-away one-node SLURM cluster on loopback, for the opt-in `slurm` tests.

munged, slurmctld and slurmd run from a temporary folder (key, sockets, state, spool, logs),
without cgroups or accounting. SLURM's job steps look for /etc/slurm/slurm.conf, so a symlink
to the temporary conf is placed there for the cluster's lifetime (refused if a real one exists).
Every daemon is stopped by the PID this module started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DEBIAN_PACKAGES = ("slurm-wlm", "munge")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


class ClusterUnavailable(RuntimeError):
    """SLURM could not be installed or started here (the test skips with this message)."""


def ensure_installed(timeout: float = 300) -> None:
    """Install SLURM and munge from Debian's packages when they are missing (root only)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterUnavailable("slurm-wlm/munge missing and cannot be installed (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")


class LocalSlurm:
    """Start with ``with LocalSlurm(tmp_dir) as cluster:``; daemons stop on exit."""

    def __init__(
        self, root: Path, cpus: int | None = None, real_memory_mb: int = 16000, enforce_memory: bool = False
    ) -> None:
        """``enforce_memory``: kill a job whose processes use more than its ``--mem`` (checked each 1 s)."""
        self.root = Path(root)
        self.enforce_memory = enforce_memory
        self.host = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        self.real_memory_mb = real_memory_mb
        self.processes: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self._linked_conf = False

    # --- set-up -------------------------------------------------------------------------------------
    def _write_munge_key(self) -> Path:
        munge_dir = self.root / "munge"
        munge_dir.mkdir(parents=True)
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        shutil.chown(munge_dir, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        munge_dir.chmod(0o700)
        return munge_dir

    def _write_conf(self, munge_socket: Path) -> None:
        state, spool = self.root / "state", self.root / "spool"
        state.mkdir()
        spool.mkdir()
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=megdecode-test",
                    f"SlurmctldHost={self.host}(127.0.0.1)",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={munge_socket}",
                    "CredType=cred/munge",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "SlurmctldPort=16817",
                    "SlurmdPort=16818",
                    f"StateSaveLocation={state}",
                    f"SlurmdSpoolDir={spool}",
                    f"SlurmctldPidFile={self.root}/slurmctld.pid",
                    f"SlurmdPidFile={self.root}/slurmd.pid",
                    f"SlurmctldLogFile={self.root}/slurmctld.log",
                    f"SlurmdLogFile={self.root}/slurmd.log",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "AccountingStorageType=accounting_storage/none",
                    *(
                        [
                            "JobAcctGatherType=jobacct_gather/linux",
                            "JobAcctGatherFrequency=task=1",
                            "JobAcctGatherParams=OverMemoryKill",
                        ]
                        if self.enforce_memory
                        else ["JobAcctGatherType=jobacct_gather/none"]
                    ),  # fmt: skip
                    "JobCompType=jobcomp/none",
                    "ReturnToService=2",
                    "MinJobAge=3600",  # finished jobs stay listed by squeue (status checks, test assertions)
                    "MpiDefault=none",
                    "SchedulerType=sched/backfill",
                    f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                    f"RealMemory={self.real_memory_mb} State=UNKNOWN",
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.out", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def start(self, timeout: float = 30) -> None:
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            raise ClusterUnavailable(f"{SYSTEM_CONF} exists: refusing to replace a real SLURM configuration")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged runs as user munge and must reach its folder
        munge_dir = self._write_munge_key()
        munge_socket = munge_dir / "munge.socket"
        munged = [
            "munged", "--foreground", f"--key-file={munge_dir / 'munge.key'}", f"--socket={munge_socket}",
            f"--pid-file={munge_dir / 'munged.pid'}", f"--log-file={munge_dir / 'munged.log'}",
            f"--seed-file={munge_dir / 'munged.seed'}", "--force",
        ]  # fmt: skip
        self._spawn(["runuser", "-u", "munge", "--", *munged], "munged")
        self._wait_for(lambda: munge_socket.exists(), timeout, "munged did not create its socket")
        self._write_conf(munge_socket)
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        self._linked_conf = True
        self._spawn(["slurmctld", "-D", "-f", str(self.conf)], "slurmctld")
        self._spawn(["slurmd", "-D", "-N", self.host, "-f", str(self.conf)], "slurmd")
        self._wait_for(self._node_idle, timeout, "the node did not become idle")

    def _node_idle(self) -> bool:
        proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env())
        return proc.returncode == 0 and "idle" in proc.stdout

    def _wait_for(self, condition, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for proc in self.processes:
                if proc.poll() is not None:
                    raise ClusterUnavailable(f"{proc.args[0]} exited ({proc.returncode}): {self.logs()}")
            time.sleep(0.2)
        raise ClusterUnavailable(f"{message} within {timeout} s: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}:\n{p.read_text()[-1500:]}"
            for p in sorted(self.root.glob("*.*"))
            if p.suffix in (".log", ".out")
        )

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # --- tear-down ----------------------------------------------------------------------------------
    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()
        if self._linked_conf and SYSTEM_CONF.is_symlink():
            SYSTEM_CONF.unlink()
        self._linked_conf = False

    def __enter__(self) -> LocalSlurm:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
