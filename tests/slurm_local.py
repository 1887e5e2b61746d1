"""A single-node SLURM on localhost for the cluster tests: install (Debian packages), configure, start, stop.

The configuration lives in a temporary directory and reaches the clients through ``SLURM_CONF``;
nothing is written to /etc/slurm, so other snakemake calls never wait on a controller. The daemons
are stopped by their process ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]


def installed() -> bool:
    return all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "squeue", "munged"))


def install() -> None:
    """apt-get install the SLURM packages when missing (root only)."""
    if installed():
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"SLURM is not installed and this is not root: apt-get install {' '.join(PACKAGES)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], check=True, env=env,
                   capture_output=True, timeout=900)


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.85)
    return 4000


class LocalSlurm:
    """Start with :meth:`start`, use :attr:`env` for clients, stop with :meth:`stop`."""

    def __init__(self, root: Path, partition: str = "debug"):
        self.root = Path(root)
        self.partition = partition
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.pids: dict[str, int] = {}

    @property
    def env(self) -> dict:
        return {"SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        for d in ("state", "spool", "log", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count() or 2
        self.conf.write_text(f"""\
ClusterName=vggheads-test
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/run/slurmctld.pid
SlurmdPidFile={self.root}/run/slurmd.pid
SlurmctldLogFile={self.root}/log/slurmctld.log
SlurmdLogFile={self.root}/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
NodeName={self.host} CPUs={cpus} RealMemory={_mem_mb()} State=UNKNOWN
PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")

    def _hosts_entry(self) -> None:
        try:
            socket.gethostbyname(self.host)
        except OSError:
            with open("/etc/hosts", "a") as fh:
                fh.write(f"127.0.0.1 {self.host}\n")

    def _start_munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return  # one munged per machine; left running as the system's
        run_dir = Path("/run/munge")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=30)
        pid_file = run_dir / "munged.pid"
        for _ in range(50):
            if pid_file.exists():
                self.pids["munged"] = int(pid_file.read_text().strip())
                return
            time.sleep(0.1)

    def start(self, timeout: float = 60) -> None:
        install()
        self._hosts_entry()
        self._write_conf()
        self._start_munge()
        env = dict(os.environ, **self.env)
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, env=env, timeout=30)
        subprocess.run(["slurmd", "-f", str(self.conf)], check=True, env=env, timeout=30)
        for name in ("slurmctld", "slurmd"):
            pid_file = self.root / "run" / f"{name}.pid"
            for _ in range(100):
                if pid_file.exists() and pid_file.read_text().strip():
                    self.pids[name] = int(pid_file.read_text().strip())
                    break
                time.sleep(0.1)
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            if out.strip() in ("idle", "mix", "alloc"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"SLURM node not idle after {timeout}s; see {self.root}/log")

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
