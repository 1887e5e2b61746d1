"""End to end: the real DAG on tiny params, through Snakemake and through DVC."""

import json
import sqlite3
import subprocess

import pytest

from conftest import copy_project, tiny_params, tool_env
from vggheads.schemas import read_table

pytestmark = pytest.mark.slow


def run(cmd, cwd, timeout=1500, **env):
    res = subprocess.run(cmd, cwd=cwd, env=tool_env({"MLFLOW_TRACKING_URI": "", **env}), capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def snakemake_run(tmp_path_factory):
    """One tiny run of the whole DAG with `snakemake --cores 2` (shared by the tests below)."""
    project = copy_project(tmp_path_factory.mktemp("snakemake"), tiny_params())
    out = run(["snakemake", "--cores", "2"], project)
    return project, out


def test_every_stage_ran_and_wrote_its_outputs(snakemake_run):
    project, _ = snakemake_run
    for shard in ("00000", "00001"):
        caps = read_table(project / f"data/captions/{shard}.parquet", "captions").to_pylist()
        assert len(caps) == 2 and all(c["sample_id"].startswith(shard) for c in caps)
        poses = read_table(project / f"data/poses/{shard}.parquet", "poses").to_pandas()
        assert set(poses.sample_id) == {c["sample_id"] for c in caps}
        for sid in poses.sample_id.unique():
            assert (project / f"data/poses/{shard}/{sid}.png").exists()
        assert json.loads((project / f"data/captions/{shard}.stats.json").read_text())["kept"] == 2
        assert (project / f"logs/sample_captions/{shard}.log").exists()
        assert (project / f"logs/benchmark/extract_poses/{shard}.tsv").exists()
    dry = run(["snakemake", "--dry-run"], project)
    assert "Nothing to be done" in dry


def test_runs_are_logged_to_mlflow_with_tags(snakemake_run):
    project, _ = snakemake_run
    db = sqlite3.connect(project / "mlflow.db")
    tags = db.execute("select key, value from tags where key in ('vggheads.stage', 'vggheads.shard')").fetchall()
    stages = {v for k, v in tags if k == "vggheads.stage"}
    assert {"sample_captions", "extract_poses"} <= stages
    assert ("vggheads.shard", "00001") in tags
    commits = db.execute("select count(*) from tags where key = 'mlflow.source.git.commit'").fetchone()[0]
    assert commits >= 4


def test_rerun_redoes_only_what_is_missing(snakemake_run):
    project, _ = snakemake_run
    (project / "data/poses/00001.parquet").unlink()
    dry = run(["snakemake", "--dry-run", "--quiet", "rules"], project)
    assert "extract_poses" in dry and "sample_captions" not in dry
    before = (project / "data/poses/00000.parquet").stat().st_mtime_ns
    run(["snakemake", "--cores", "2"], project)
    assert (project / "data/poses/00001.parquet").exists()
    assert (project / "data/poses/00000.parquet").stat().st_mtime_ns == before


def test_changed_params_rerun_the_affected_stage(snakemake_run):
    project, _ = snakemake_run
    (project / "over.yaml").write_text("poses:\n  stickwidth: 6\n")  # merged over params.yaml
    dry = run(["snakemake", "--dry-run", "--quiet", "rules", "--configfile", "over.yaml"], project)
    assert "extract_poses" in dry and "sample_captions" not in dry and "build_head_model" not in dry


def test_dvc_repro_runs_the_same_pipeline(tmp_path):
    project = copy_project(tmp_path, tiny_params())
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], project)
    run(["dvc", "repro"], project)
    for shard in ("00000", "00001"):
        assert read_table(project / f"data/poses/{shard}.parquet", "poses").num_rows > 0
    status = run(["dvc", "status"], project)
    assert "up to date" in status
