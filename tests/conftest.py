"""Test set-up: every library offline, and any non-loopback connection fails the test."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real data samples (LAION rows, benchmark samples): ../shared/data beside the checkout, or
# wherever VGGHEADS_SHARED_DATA points. Read from there, never copied into the repository.
SHARED_DATA = Path(os.environ.get("VGGHEADS_SHARED_DATA", REPO.parent / "shared" / "data"))

from vggheads.offline import OFFLINE_ENV, configure  # noqa: E402

for _k, _v in OFFLINE_ENV.items():
    os.environ[_k] = _v
configure()
# One throw-away MLflow store for the whole session (tests that check tracking set their own).
_MLFLOW_DIR = tempfile.mkdtemp(prefix="vggheads-test-mlflow-")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_MLFLOW_DIR}/mlflow.db"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkAttempt(RuntimeError):
    pass


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "") or str(host).startswith("127.")


def _guard_connect(self, address):
    if not _is_local(address):
        raise NetworkAttempt(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


def _guard_connect_ex(self, address):
    if not _is_local(address):
        raise NetworkAttempt(f"test tried to reach the network: {address!r}")
    return _real_connect_ex(self, address)


def _guard_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_local((host,)):
        raise NetworkAttempt(f"test tried to resolve a network host: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse every non-loopback connection (and name lookup) made in the test process."""
    monkeypatch.setattr(socket.socket, "connect", _guard_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guard_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guard_getaddrinfo)
    yield


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real data samples not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def aflw(shared_data) -> Path:
    """The AFLW2000-3D samples (jpg + mat pairs) among the real data."""
    root = shared_data / "benchmarks" / "aflw2000_sample"
    if not root.exists():
        pytest.skip(f"AFLW2000-3D samples not found at {root}")
    return root


@pytest.fixture(scope="session")
def head_model_file(pytestconfig) -> Path:
    """The project's head model (seed 0) as a file, built once and kept in pytest's cache, keyed by
    the head-model package's source so a changed builder rebuilds it (a build takes 20-60 s)."""
    import hashlib

    import vggheads.headmodel as hm
    from vggheads.headmodel import build_head_model, save_head_model

    src = b"".join(p.read_bytes() for p in sorted(Path(hm.__file__).parent.glob("*.py")))
    path = pytestconfig.cache.mkdir("vggheads-headmodel") / f"{hashlib.sha256(src).hexdigest()[:16]}.npz"
    if not path.exists():
        for stale in path.parent.glob("*.npz"):
            stale.unlink()
        save_head_model(build_head_model(seed=0), path)
    return path


@pytest.fixture(scope="session")
def head_model(head_model_file):
    """The project's head model (seed 0), loaded (see head_model_file)."""
    from vggheads.headmodel import load_head_model

    return load_head_model(head_model_file)


@pytest.fixture
def params():
    """The default params.yaml, validated (tests shrink it as they need)."""
    from vggheads.config import load_params

    return load_params(REPO / "params.yaml")


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge (what Snakemake does with --configfile)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tiny_params() -> dict:
    import yaml

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return merge(base, yaml.safe_load((REPO / "tests" / "data" / "tiny.yaml").read_text()))


def copy_project(dest: Path, params: dict | None = None) -> Path:
    """A copy of the repository's tracked files (plus untracked, not ignored ones) with ``params`` as params.yaml."""
    import shutil
    import subprocess

    import yaml

    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if params is not None:
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def tool_env(extra: dict | None = None) -> dict:
    """Environment for snakemake/dvc subprocesses: the venv's bin on PATH, everything offline."""
    import sys

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.update(OFFLINE_ENV)
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- the tiny DAG, run once per session


def run_tool(cmd: list[str], cwd: Path, timeout: int = 1500, check: bool = True, **env) -> str:
    """Run a snakemake/dvc/... command offline in ``cwd`` (MLflow store in that folder); return its output."""
    import subprocess

    res = subprocess.run(
        cmd, cwd=cwd, env=tool_env({"MLFLOW_TRACKING_URI": "", **env}), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}"
    return res.stdout + res.stderr


def dag_outputs(project: Path) -> list[str]:
    """Every output path of the project's DAG (as dvc.yaml lists them: outs, metrics, plots)."""
    from vggheads.dvc_sync import build

    doc = build(project / "Snakefile", project / "params.yaml")
    paths = []
    for stage in doc["stages"].values():
        items = stage["foreach"] if "foreach" in stage else [None]
        body = stage["do"] if "foreach" in stage else stage
        for item in items:
            for key in ("outs", "metrics", "plots"):
                paths += [p.replace("${item}", item) if item else p for p in body.get(key) or []]
    return paths


def strace_works() -> bool:
    """Whether ``strace`` is installed and may trace here (containers can forbid ptrace)."""
    import shutil
    import subprocess

    if not shutil.which("strace"):
        return False
    res = subprocess.run(["strace", "-f", "-qq", "-e", "trace=none", "true"], capture_output=True)
    return res.returncode == 0


def traced(cmd: list[str], trace: Path) -> list[str]:
    """``cmd`` under strace, recording every connect/sendto/sendmsg of every process into ``trace``
    (``cmd`` unchanged when strace cannot run here; check ``trace.exists()`` afterwards)."""
    if not strace_works():
        return cmd
    return [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-qq",
        "-e",
        "trace=connect,sendto,sendmsg,execve",
        "-e",
        "signal=none",
        "-o",
        str(trace),
        *cmd,
    ]


def remote_connects(trace: str) -> list[str]:
    """The lines of an ``strace -e trace=connect,sendto,sendmsg,execve`` log that address another host
    (IPv4/IPv6 outside loopback; a DNS query is a connect to the name server's port 53).

    One exception, not this project's: where SLURM's commands are installed, Snakemake's SLURM
    executor plugin runs ``scontrol show config`` whenever Snakemake starts (to word its help text),
    and scontrol without a slurm.conf looks its controller up in DNS (``_slurmctld._tcp``). The
    DNS lookups of ``scontrol`` processes are left out (README, Offline)."""
    import re

    scontrol = {
        line.split()[0]
        for line in trace.splitlines()
        if re.search(r'execve\("[^"]*/scontrol"', line) and "ENOENT" not in line
    }
    remote = []
    for line in trace.splitlines():
        if "AF_INET" not in line:  # AF_UNIX, AF_NETLINK: local
            continue
        if line.split()[0] in scontrol and "htons(53)" in line:
            continue
        addr = re.search(r'inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]+)"', line)
        if addr is None or not (addr.group(1).startswith("127.") or addr.group(1) in ("::1", "0.0.0.0", "::")):
            remote.append(line)
    return remote


class TinyRun:
    """A finished run of the whole DAG on tests/data/tiny.yaml (see the ``tiny_run`` fixture)."""

    def __init__(self, project: Path, log: str, trace: Path | None, planted: list[Path]):
        self.project, self.log, self.trace, self.planted = project, log, trace, planted

    def clone(self, dest: Path) -> Path:
        """A copy to change: outputs, Snakemake's records and the MLflow store, modification times kept."""
        import shutil

        shutil.copytree(self.project, dest, symlinks=True)
        return dest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """The whole DAG on tiny params, run once per session with `snakemake --cores 2` and shared by
    every end-to-end test (tests that change files work on ``tiny_run.clone(tmp_path)``).

    Two checks ride along at no extra cost: beside every output the run will write, a stale partial
    file is planted first, as a killed earlier write would leave it (``vggheads.io``: every write
    must clear them); and the run goes under ``strace`` (when it may trace) to record every
    ``connect``/``sendto`` of every process, native libraries' included.
    """
    project = copy_project(tmp_path_factory.mktemp("tiny_run"), tiny_params())
    planted = []
    for rel in dag_outputs(project):
        out = project / rel
        stale = out.parent / f".{out.name}.partial-stale{''.join(out.suffixes)}"
        stale.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix:
            stale.write_bytes(b"half of a file a SIGKILL interrupted")
        else:  # a folder output
            stale.mkdir()
            (stale / "half.png").write_bytes(b"half")
        planted.append(stale)
    trace = project.parent / "network.strace"
    log = run_tool(traced(["snakemake", "--cores", "2"], trace), project, timeout=2400)
    return TinyRun(project, log, trace if trace.exists() else None, planted)
