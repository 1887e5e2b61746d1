"""A single-node SLURM on localhost for the cluster tests: install (Debian packages), configure, start, stop.

The configuration lives in a temporary directory and reaches the clients through ``SLURM_CONF``;
nothing is written to /etc/slurm, so other snakemake calls never wait on a controller (the
executor plugin runs ``scontrol show config`` at import). Ports are picked free, so two test runs
on one machine do not collide. The daemons this harness starts are stopped by their process ids
(munged included: each cluster runs its own, on its own socket and key); jobs still queued or
running are cancelled first.

Usage::

    slurm = LocalSlurm(tmp_dir)
    slurm.start()                 # installs the packages when missing (root), node idle in ~1 s
    subprocess.run(["sbatch", ...], env=slurm.client_env(dict(os.environ)))
    slurm.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]
BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel", "munged", "munge", "unmunge")


def installed() -> bool:
    return all(shutil.which(b) or Path("/usr/sbin", b).exists() for b in BINARIES)


def install() -> None:
    """apt-get install the SLURM packages when missing (root only; about 15 s on a fresh Debian 12)."""
    if installed():
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"SLURM is not installed and this is not root: apt-get install {' '.join(PACKAGES)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
            )
    if not installed():
        raise RuntimeError(f"installed {PACKAGES} but some of {BINARIES} are still missing")


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.85)
    return 4000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child (not reaped yet) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class LocalSlurm:
    """Start with :meth:`start`, run clients with :meth:`client_env`, stop with :meth:`stop`.

    ``mem_mb``/``cpus``/``gpus`` are what the node advertises (``SlurmdParameters=config_overrides``:
    the node is not drained when the machine has less). Nothing enforces memory here (no cgroups), so
    the rules' real-cluster requests (GBs per job) schedule on a small CI machine as they are, and
    GPU rules' ``--gpus=1`` is granted (a counted GPU without a device: their code runs on the CPU).
    """

    def __init__(
        self, root: Path, partition: str = "debug", mem_mb: int | None = None, cpus: int | None = None, gpus: int = 1
    ):
        self.root = Path(root)
        self.partition = partition
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        self.munge_dir = self.root / "munge"
        self.munge_socket = self.munge_dir / "munge.socket"
        if len(str(self.munge_socket)) > 100:  # a unix socket path has at most 107 bytes
            self.munge_dir = Path(tempfile.mkdtemp(prefix="vggheads-munge-"))
            self.munge_socket = self.munge_dir / "munge.socket"
        self.mem_mb = mem_mb or max(_mem_mb(), 64000)
        self.cpus = cpus or max(os.cpu_count() or 2, 2)
        self.gpus = gpus
        self.pids: dict[str, int] = {}  # daemons this harness started and has not stopped yet
        self.stopped: dict[str, int] = {}  # daemons stop() ended (for the caller to check)

    def client_env(self, base: dict) -> dict:
        """``base`` (e.g. the test's tool environment) for SLURM clients: ``SLURM_CONF`` set, ``bin/srun`` first on PATH.

        The executor plugin's job step (snakemake-executor-plugin-slurm-jobstep 0.6) drops every
        ``SLURM_*`` variable but the job's identity before its inner ``srun``, ``SLURM_CONF``
        included. A real cluster keeps slurm.conf in /etc/slurm (or runs configless), so srun finds
        it anyway; this harness keeps it in a temporary directory, so its ``srun`` wrapper puts it back.
        """
        env = dict(base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin}:{base.get('PATH', '')}"
        return env

    def _write_wrappers(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        srun = shutil.which("srun") or "/usr/bin/srun"
        wrapper = self.bin / "srun"
        wrapper.write_text(f'#!/bin/sh\nexport SLURM_CONF="${{SLURM_CONF:-{self.conf}}}"\nexec {srun} "$@"\n')
        wrapper.chmod(0o755)

    def _write_conf(self) -> None:
        for d in ("state", "spool", "log", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        ctld_port, d_port = _free_port(), _free_port()
        while d_port == ctld_port:
            d_port = _free_port()
        self.conf.write_text(f"""\
ClusterName=vggheads-test
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/run/slurmctld.pid
SlurmdPidFile={self.root}/run/slurmd.pid
SlurmctldLogFile={self.root}/log/slurmctld.log
SlurmdLogFile={self.root}/log/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=86400
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
GresTypes=gpu
NodeName={self.host} CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        # slurm reads gres.conf beside slurm.conf. /dev/null stands in for the GPU device files, so
        # jobs of GPU rules (--gpus=1) schedule and run; their code finds no CUDA and uses the CPU.
        (self.root / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={self.host} Name=gpu File=/dev/null Count={self.gpus}\n"
        )

    def _hosts_entry(self) -> None:
        try:
            socket.gethostbyname(self.host)
        except OSError:
            with open("/etc/hosts", "a") as fh:
                fh.write(f"127.0.0.1 {self.host}\n")

    def _start_munge(self) -> None:
        """This cluster's own munged: its own key, socket, pid, log and seed files under the
        temporary directory (``AuthInfo=socket=...`` points slurm at it). Nothing is shared with a
        system munged or with another test run on the machine, so none can stop the other's."""
        d = self.munge_dir
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = d / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)
        pid_file = d / "munged.pid"
        pid_file.unlink(missing_ok=True)
        res = subprocess.run(
            [
                "munged",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={pid_file}",
                f"--log-file={d / 'munged.log'}",
                f"--seed-file={d / 'munged.seed'}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if res.returncode != 0:
            raise RuntimeError(f"munged did not start ({res.returncode}): {res.stderr}")
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                self.pids["munged"] = int(pid_file.read_text().strip())
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"munged started but wrote no pid file {pid_file}")
        for _ in range(50):
            if self._munge_works():
                return
            time.sleep(0.1)
        raise RuntimeError(f"munged runs but a munge/unmunge round trip on {self.munge_socket} fails")

    def _munge_works(self) -> bool:
        """A credential round trip through this cluster's munged."""
        sock = f"--socket={self.munge_socket}"
        try:
            cred = subprocess.run(["munge", "-n", sock], capture_output=True, timeout=10)
            return (
                cred.returncode == 0
                and subprocess.run(["unmunge", sock], input=cred.stdout, capture_output=True, timeout=10).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            return False

    def _log_tail(self) -> str:
        out = []
        for name in ("slurmctld", "slurmd"):
            log = self.root / "log" / f"{name}.log"
            if log.exists():
                out.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(out)

    def start(self, timeout: float = 60) -> None:
        """Install when missing, configure, start munged, slurmctld and slurmd; wait
        for the node to be idle. On any failure the daemons already started are stopped again."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        install()
        self._hosts_entry()
        self._write_conf()
        self._write_wrappers()
        self._start_munge()
        env = self.client_env(dict(os.environ))
        for name in ("slurmctld", "slurmd"):
            res = subprocess.run([name, "-f", str(self.conf)], env=env, capture_output=True, text=True, timeout=30)
            if res.returncode != 0:
                raise RuntimeError(f"{name} did not start ({res.returncode}): {res.stderr}\n{self._log_tail()}")
            pid_file = self.root / "run" / f"{name}.pid"
            for _ in range(100):
                if pid_file.exists() and pid_file.read_text().strip():
                    self.pids[name] = int(pid_file.read_text().strip())
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"{name} wrote no pid file {pid_file}\n{self._log_tail()}")
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
            if state in ("idle", "mix", "alloc"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"SLURM node not idle after {timeout}s (state {state!r})\n{self._log_tail()}")

    FIELDS = {
        "id": "JobID",
        "name": "Name",
        "comment": "Comment",
        "state": "State",
        "mem": "MinMemory",
        "time": "TimeLimit",
        "tres": "tres-per-job",
        "cpus": "cpus-per-task",
        "account": "Account",
        "partition": "Partition",
    }

    def jobs(self) -> list[dict]:
        """Every job the controller still knows (MinJobAge=86400 keeps finished ones for a day), as
        squeue prints the :attr:`FIELDS`: the executor plugin writes ``rule_<rule>_wildcards_<values>``
        into the comment; ``tres`` is ``gres:gpu:1`` for ``--gpus=1``; ``mem`` like ``2000M``."""
        fmt = ",".join(f"{f}:|" for f in self.FIELDS.values())
        res = subprocess.run(
            ["squeue", "--states=all", "-h", "-O", fmt],
            env=self.client_env(dict(os.environ)),
            capture_output=True,
            text=True,
            timeout=30,
        )
        n = len(self.FIELDS)
        return [dict(zip(self.FIELDS, line.split("|")[:n])) for line in res.stdout.splitlines() if line.count("|") >= n]

    def stop(self) -> None:
        """Cancel what is still queued or running, then stop the daemons this harness started, by pid."""
        env = self.client_env(dict(os.environ))
        if "slurmctld" in self.pids:
            subprocess.run(
                ["scancel", "--full", "--partition", self.partition], env=env, capture_output=True, timeout=30
            )
            for _ in range(50):  # let slurmd tear the job steps down while it still runs
                try:
                    if not any(j["state"] in ("RUNNING", "COMPLETING", "CONFIGURING") for j in self.jobs()):
                        break
                except (subprocess.SubprocessError, OSError):
                    break
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            self.stopped[name] = pid
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
                for _ in range(50):
                    if not _alive(pid):
                        break
                    time.sleep(0.1)
        if not self.munge_dir.is_relative_to(self.root):
            shutil.rmtree(self.munge_dir, ignore_errors=True)
