"""The pipeline on a real single-node SLURM, through the project's Snakemake profile.

The test installs SLURM from Debian's packages when missing (root), starts munge, slurmctld and
slurmd on localhost with a configuration in a temporary directory, runs the tiny pipeline with
the README's command, and stops the daemons by their process ids. Faults are injected with a shim
``vggheads`` on PATH: one job fails once, another is killed with SIGKILL in the middle of writing.
"""

import filecmp
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import copy_project, tiny_params, tool_env
from slurm_local import LocalSlurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# The README's cluster command, plus the two settings a cluster without accounting needs.
PROFILE_ARGS = ["--profile", "workflow/profiles/slurm",
                "--default-resources", "slurm_account=vggheads", "slurm_partition=debug",
                "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]

SHIM = """#!/usr/bin/env bash
# Fault injection for the cluster test: the first call of a chosen subcommand fails (fail) or is
# killed with SIGKILL while it writes (kill); later calls run the real command.
set -u
marker="{markers}/$1.{shard_marker}"
if [ "$1" = "{fail}" ] && [ ! -e "$marker.failed" ]; then
  touch "$marker.failed"; echo "injected failure" >&2; exit 3
fi
if [ "$1" = "{kill}" ] && [ ! -e "$marker.killed" ]; then
  touch "$marker.killed"
  "{real}" "$@" & pid=$!
  sleep {kill_after}; kill -9 $pid; wait $pid; exit 137
fi
exec "{real}" "$@"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        slurm.start()
    except Exception as exc:  # pragma: no cover - reported, not hidden
        slurm.stop()
        pytest.fail(f"could not start a local SLURM: {exc}")
    yield slurm
    slurm.stop()
    for name, pid in slurm.pids.items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _run(cmd, cwd, env, timeout=1500):
    res = subprocess.run(["timeout", "-k", "10", str(timeout), *cmd], cwd=cwd, env=env, capture_output=True,
                         text=True)
    return res


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("local"), tiny_params())
    res = _run(["snakemake", "--cores", "2"], project, tool_env())
    assert res.returncode == 0, res.stderr[-6000:]
    return project


def _outputs(project: Path) -> list[Path]:
    return sorted(p.relative_to(project) for p in (project / "data").rglob("*")
                  if p.is_file() and "demo" not in p.parts and ".work" not in p.parts)


def test_pipeline_on_slurm_equals_local_run_despite_faults(cluster, local_run, tmp_path):
    project = copy_project(tmp_path / "project", tiny_params())
    shim_dir, markers = tmp_path / "shim", tmp_path / "markers"
    shim_dir.mkdir(), markers.mkdir()
    real = Path(tool_env()["PATH"].split(":")[0]) / "vggheads"
    shim = shim_dir / "vggheads"
    shim.write_text(SHIM.format(markers=markers, shard_marker="x", fail="sample-captions", kill="extract-poses",
                                real=real, kill_after="1.5"))
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = tool_env(cluster.env)
    env["PATH"] = f"{shim_dir}:{env['PATH']}"
    res = _run(["snakemake", *PROFILE_ARGS], project, env)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-8000:]
    # Both faults happened, and the run still completed through retries.
    assert (markers / "sample-captions.x.failed").exists() and (markers / "extract-poses.x.killed").exists()
    assert "injected failure" in log or "Error in rule sample_captions" in log
    # The jobs went through sbatch.
    queue = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i %T"], env=env, capture_output=True,
                           text=True).stdout.split("\n")
    completed = [line for line in queue if line.endswith("COMPLETED")]
    failed = [line for line in queue if line.split(" ")[-1] in ("FAILED", "OUT_OF_MEMORY", "CANCELLED")]
    assert len(completed) >= 4 and len(failed) >= 2, queue
    # Same outputs, same bytes, as the local run: nothing corrupt survived the kill.
    assert _outputs(project) == _outputs(local_run)
    for rel in _outputs(project):
        if rel.suffix == ".parquet":
            assert _table(project / rel) == _table(local_run / rel), f"{rel} differs from the local run"
        elif rel.suffix in (".png", ".npz", ".jpg"):
            assert filecmp.cmp(project / rel, local_run / rel, shallow=False), f"{rel} differs from the local run"


def _table(path):
    """A parquet file's content without its timing columns (wall-clock seconds differ between runs)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.drop_columns([c for c in table.column_names if c == "seconds"]).to_pylist()
