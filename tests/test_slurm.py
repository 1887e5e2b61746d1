"""The pipeline on a real single-node SLURM, through the project's Snakemake profile.

The test installs SLURM from Debian's packages when missing (root), starts munge, slurmctld and
slurmd on localhost with a configuration in a temporary directory, runs the tiny pipeline with
the README's command (docs/cluster.md), and stops the daemons by their process ids. Faults are
injected with a shim ``vggheads`` on PATH: the first ``sample-captions`` call fails, and the first
``extract-poses`` call is killed with SIGKILL in the middle of writing its parquet (half of the
file's bytes on disk). Both jobs must be retried by the profile and the run must end with the same
outputs as a local run.
"""

import filecmp
import math
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import copy_project, tiny_params, tool_env
from slurm_local import LocalSlurm, _alive

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ACCOUNT, PARTITION = "vggheads", "debug"
# docs/cluster.md, as written: the profile, the user's account and partition, and the two plugin
# settings a cluster without job accounting (no slurmdbd, as here) needs.
CLUSTER_CMD = [
    "snakemake",
    "--profile",
    "workflow/profiles/slurm",
    "--default-resources",
    f"slurm_account={ACCOUNT}",
    f"slurm_partition={PARTITION}",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
]
RUN_TIMEOUT = 2400  # seconds; the plugin can hang forever when its status command fails

SHIM = """#!/usr/bin/env bash
# Fault injection for the cluster test, first call of each chosen subcommand only:
#   {fail}: exits 3 before doing anything;
#   {kill}: runs the real command, which SIGKILLs itself halfway through writing its first parquet.
# Every call records its SLURM job id (proof that it ran inside a SLURM job).
set -u
echo "$1 ${{SLURM_JOB_ID:-none}}" >> "{markers}/calls"
if [ "$1" = "{fail}" ] && [ ! -e "{markers}/$1.failed" ]; then
  touch "{markers}/$1.failed"; echo "injected failure" >&2; exit 3
fi
if [ "$1" = "{kill}" ] && [ ! -e "{markers}/$1.killed" ]; then
  touch "{markers}/$1.killed"
  exec "{python}" "{killer}" "$@"
fi
exec "{real}" "$@"
"""

KILLER = """\
# The real CLI, except that the first parquet it writes gets half of its bytes on disk and then the
# process receives SIGKILL (no Python cleanup runs, as when the scheduler or the OOM killer kills).
import os, signal, sys
import pyarrow.parquet as pq

_write = pq.write_table

def _half_then_sigkill(table, where, *args, **kwargs):
    _write(table, where, *args, **kwargs)
    size = os.path.getsize(where)
    with open(where, "r+b") as fh:
        fh.truncate(size // 2)
        fh.flush()
        os.fsync(fh.fileno())
    with open(os.path.join({markers!r}, "killed_while_writing"), "w") as fh:
        fh.write(f"{{where}} {{size // 2}} of {{size}} bytes\\n")
    os.kill(os.getpid(), signal.SIGKILL)

pq.write_table = _half_then_sigkill
from vggheads.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(cmd, cwd, env, timeout=RUN_TIMEOUT):
    """Run under `timeout -k` so a hung executor can never hang the test session."""
    t0 = time.monotonic()
    res = subprocess.run(["timeout", "-k", "20", str(timeout), *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    res.seconds = time.monotonic() - t0
    return res


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"), partition=PARTITION)
    try:
        slurm.start()
    except Exception as exc:  # reported, not hidden
        slurm.stop()
        pytest.fail(f"could not start a local SLURM: {exc}")
    yield slurm
    slurm.stop()


def test_daemons_start_and_stop_by_pid(tmp_path):
    """A second, throw-away cluster: started, a job runs through sbatch, stopped by process id."""
    slurm = LocalSlurm(tmp_path, partition=PARTITION)
    try:
        slurm.start()
        started = dict(slurm.pids)
        assert {"slurmctld", "slurmd"} <= set(started) and all(_alive(p) for p in started.values())
        env = slurm.client_env(tool_env())
        out = tmp_path / "job.out"
        res = subprocess.run(
            [
                "sbatch",
                "--parsable",
                "--wait",
                "-t",
                "1",
                "--mem",
                "100",
                "-o",
                str(out),
                "--wrap",
                "echo job=$SLURM_JOB_ID",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        assert out.read_text().strip() == f"job={res.stdout.strip().split(';')[0]}"
    finally:
        slurm.stop()
    assert set(slurm.stopped) == set(started)
    for name, pid in slurm.stopped.items():
        assert not _alive(pid), f"{name} (pid {pid}) still runs after stop()"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("local"), tiny_params())
    res = _run(["snakemake", "--cores", "2"], project, tool_env())
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    return project


def _outputs(project: Path) -> list[Path]:
    """Every file the DAG wrote under data/ (the demo input, work dirs and hidden temporaries aside)."""
    return sorted(
        p.relative_to(project)
        for p in (project / "data").rglob("*")
        if p.is_file()
        and "demo" not in p.parts
        and ".work" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(project).parts)
    )


def _declared_resources(log: str) -> dict[str, dict]:
    """Per rule, the threads and gpu Snakemake printed for its jobs (``rule x:`` ... ``resources: ...``)."""
    import re

    out = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", log):
        m = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if not m or not res or m.group(1) == "all":
            continue
        values = dict(kv.split("=", 1) for kv in res.group(1).split(", ") if "=" in kv)
        threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
        out[m.group(1)] = {"threads": int(threads.group(1)) if threads else 1, "gpu": int(values.get("gpu", 0))}
    return out


def _mb(mem: str) -> int:
    """squeue's memory column (``2000M``, ``4G``) in MB."""
    return int(float(mem[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[mem[-1]])


def _minutes(limit: str) -> int:
    """squeue's time limit (``30:00``, ``1:00:00``, ``1-00:00:00``) in minutes."""
    days, _, hms = limit.rpartition("-")
    parts = [int(p) for p in hms.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return int(days or 0) * 1440 + parts[0] * 60 + parts[1]


def _table(path):
    """A parquet file's rows without timing columns (wall-clock seconds differ between runs)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    rows = table.drop_columns([c for c in table.column_names if c == "seconds"]).to_pylist()
    return _nan_as_text(rows)


def _nan_as_text(value):
    """NaN compares unequal to itself: spell it out so equal tables compare equal."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: _nan_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_as_text(v) for v in value]
    return value


def test_pipeline_on_slurm_equals_local_run_despite_faults(cluster, local_run, tmp_path):
    project = copy_project(tmp_path / "project", tiny_params())
    shim_dir, markers = tmp_path / "shim", tmp_path / "markers"
    shim_dir.mkdir(), markers.mkdir()
    real = Path(sys.executable).parent / "vggheads"
    killer = shim_dir / "kill_mid_write.py"
    killer.write_text(KILLER.format(markers=str(markers)))
    shim = shim_dir / "vggheads"
    shim.write_text(
        SHIM.format(
            markers=markers,
            fail="sample-captions",
            kill="extract-poses",
            real=real,
            python=sys.executable,
            killer=killer,
        )
    )
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = cluster.client_env(tool_env())
    env["PATH"] = f"{shim_dir}:{env['PATH']}"

    res = _run(CLUSTER_CMD, project, env)
    log = res.stdout + res.stderr
    print(f"SLURM run: {res.seconds:.0f} s")
    assert res.returncode == 0, log[-8000:]

    # Both faults happened: one failure, one SIGKILL with half a parquet on disk.
    assert (markers / "sample-captions.failed").exists() and (markers / "extract-poses.killed").exists()
    killed = (markers / "killed_while_writing").read_text().split()
    half_written = Path(killed[0])
    assert "injected failure" in log or "Error in rule sample_captions" in log
    assert "Error in rule extract_poses" in log
    # Every vggheads call ran inside a SLURM job, and the failed ones were resubmitted.
    calls = [line.split() for line in (markers / "calls").read_text().splitlines()]
    assert calls and all(job != "none" for _, job in calls), calls
    assert sum(c == "sample-captions" for c, _ in calls) == 3  # 2 shards + 1 retry
    assert sum(c == "extract-poses" for c, _ in calls) == 3
    jobs = cluster.jobs()
    states = [j["state"] for j in jobs]
    assert states.count("FAILED") == 2 and states.count("COMPLETED") >= len(calls) - 2, jobs
    # Each job asked SLURM for what its rule declares: the user's account and partition, the rule's
    # threads, and a GPU exactly for the jobs whose rule says gpu=1.
    declared = _declared_resources(log)
    assert {"sample_captions", "extract_poses", "render"} <= set(declared), declared
    for j in jobs:
        rule = j["comment"].removeprefix("rule_").split("_wildcards_")[0]
        assert (j["account"], j["partition"]) == (ACCOUNT, PARTITION), j
        assert rule in declared, (rule, declared)
        assert int(j["cpus"]) == declared[rule]["threads"], (j, declared[rule])
        assert ("gpu:1" in j["tres"]) == (declared[rule]["gpu"] == 1), (j, declared[rule])
    # The retry asked SLURM for more: the rules scale mem_mb and runtime with the attempt.
    for rule in ("sample_captions", "extract_poses"):
        failed = [j for j in jobs if j["comment"].startswith(f"rule_{rule}_") and j["state"] == "FAILED"]
        assert len(failed) == 1, jobs
        retried = [j for j in jobs if j["comment"] == failed[0]["comment"] and j["state"] == "COMPLETED"]
        assert len(retried) == 1, jobs
        assert _mb(retried[0]["mem"]) == 2 * _mb(failed[0]["mem"]) > 0, (failed, retried)
        assert _minutes(retried[0]["time"]) == 2 * _minutes(failed[0]["time"]) > 0, (failed, retried)

    # The kill hit a write in progress: the half-written bytes went to a hidden partial file beside the
    # output, never to the output path itself, and the retry's write of that output removed it.
    half_written = half_written if half_written.is_absolute() else project / half_written
    assert half_written.name.startswith((".00000.parquet.partial-", ".00001.parquet.partial-")), half_written
    assert int(killed[1]) > 0 and not half_written.exists()
    # Same outputs, same content, as the local run: nothing corrupt survived the kill.
    assert _outputs(project) == _outputs(local_run)
    for rel in _outputs(project):
        if rel.suffix == ".parquet":
            assert _table(project / rel) == _table(local_run / rel), f"{rel} differs from the local run"
        elif rel.suffix in (".png", ".npz", ".jpg"):
            assert filecmp.cmp(project / rel, local_run / rel, shallow=False), f"{rel} differs from the local run"
    # A second call has nothing to do.
    dry = _run([*CLUSTER_CMD, "--dry-run"], project, env, timeout=600)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stderr[-3000:]
