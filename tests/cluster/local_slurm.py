"""A real SLURM cluster of one node on this machine, for the cluster tests: munged,
slurmctld and slurmd started from a generated slurm.conf in a folder of their own, and
stopped whatever happens. Needs root (SlurmUser=root) and Debian's slurm-wlm and munge."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo", "scancel")
KILL_WAIT = 5
"""Seconds between the SIGTERM of a time limit (or scancel) and the SIGKILL."""


def why_not() -> str:
    """Why a cluster cannot be started here ("" when it can)."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed: apt-get install slurm-wlm munge (as root)"
    if os.geteuid() != 0:
        return "the cluster runs as root (SlurmUser=root): run the cluster tests as root"
    return ""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for handle in sockets:
            handle.bind(("127.0.0.1", 0))
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


class LocalSlurm:
    """`with LocalSlurm(folder) as cluster:` a controller and one node, idle."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def __enter__(self) -> LocalSlurm:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        folder = self.folder
        for name in ("state", "spool"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        socket_path = folder / "munge.socket"
        subprocess.run(
            ["munged", "--force", f"--socket={socket_path}", f"--key-file={key}", f"--pid-file={folder / 'munged.pid'}",
             f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}"],
            check=True, capture_output=True,
        )  # fmt: skip
        host = socket.gethostname().split(".")[0]
        controller_port, node_port = _free_ports(2)
        memory = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=live-ci",
                    f"SlurmctldHost={host}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={socket_path}",
                    f"SlurmctldPort={controller_port}",
                    f"SlurmdPort={node_port}",
                    f"StateSaveLocation={folder / 'state'}",
                    f"SlurmdSpoolDir={folder / 'spool'}",
                    f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                    f"SlurmdPidFile={folder / 'slurmd.pid'}",
                    f"SlurmctldLogFile={folder / 'slurmctld.log'}",
                    f"SlurmdLogFile={folder / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "MpiDefault=none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    f"KillWait={KILL_WAIT}",
                    "ReturnToService=2",
                    "JobRequeue=1",
                    "MinJobAge=600",
                    f"NodeName={host} CPUs={os.cpu_count()} RealMemory={memory} State=UNKNOWN",
                    "PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        subprocess.run(["slurmctld", "-c"], env=self.env, check=True, capture_output=True)
        subprocess.run(["slurmd"], env=self.env, check=True, capture_output=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.split()
            if states and all(state == "idle" for state in states):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the node did not become idle: {self.log('slurmctld')[-600:]}")

    def stop(self) -> None:
        """Every job cancelled and gone, then the daemons stopped (by their pid files), and
        any job step process of this cluster that outlived them, whatever state they are in."""
        if self.conf.is_file():
            self.run("scancel", "--full", "--user=root", check=False)
            deadline = time.monotonic() + KILL_WAIT + 15
            while self.run("squeue", "-h", check=False).stdout.strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.folder / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        for process in Path("/proc").glob("[0-9]*"):  # a slurmstepd of ours, orphaned
            try:
                mine = str(self.conf).encode() in (process / "environ").read_bytes()
                if mine and (process / "comm").read_text().strip() == "slurmstepd":
                    os.kill(int(process.name), signal.SIGKILL)
            except OSError:
                continue

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, check=check, capture_output=True, text=True)

    def log(self, daemon: str) -> str:
        path = self.folder / f"{daemon}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def sbatch(self, script: Path, *options: str) -> int:
        """Submit `script` (with command-line `options`); its job id."""
        done = self.run("sbatch", "--parsable", *options, str(script))
        return int(done.stdout.strip().split(";")[0])

    def states(self, job: int) -> list[str]:
        """The state of each task of job `job` (an array's too): PENDING, RUNNING, COMPLETED, TIMEOUT, …"""
        shown = self.run("scontrol", "-o", "show", "job", str(job), check=False).stdout
        return re.findall(r"\bJobState=(\S+)", shown)

    def wait(self, job: int, timeout: float, until=None) -> list[str]:
        """Wait until every task of `job` has ended (or `until(states)` holds); the states."""
        deadline = time.monotonic() + timeout
        active = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "SUSPENDED", "RESIZING"}
        while time.monotonic() < deadline:
            states = self.states(job)
            if states and (until(states) if until else not active & set(states)):
                return states
            time.sleep(0.5)
        raise TimeoutError(f"job {job} still {self.states(job)} after {timeout:g} s; {self.log('slurmctld')[-800:]}")


if __name__ == "__main__":  # `nox -s cluster` asks first whether a cluster starts here at all
    import sys
    import tempfile

    problem = why_not()
    if not problem:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                with LocalSlurm(Path(scratch)):
                    pass
            except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                problem = f"the SLURM daemons do not start here ({str(detail).strip()[:200]})"
    print(problem or "a SLURM controller and node start here")
    sys.exit(1 if problem else 0)
