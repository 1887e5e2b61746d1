"""DVC on the real pipeline: repro from a clean state, experiments, metrics, offline plots, a remote
round trip, and `dvc commit` after Snakemake ran the DAG outside DVC.

Everything runs on a tiny copy of the project in a temporary git repository, with dvc.yaml
regenerated from that copy's rules (`vggheads dvc-sync`'s generator), through the `dvc` command
line a user types. Every command runs under `timeout -k` with the offline environment.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_project, tiny_params, tool_env

slow = pytest.mark.slow
GIT = ["git", "-c", "user.email=test@vggheads", "-c", "user.name=test"]
# A parameter only the last stage reads: the experiment must rerun that stage and nothing else, and
# an evaluation metric must move (the tiny train split has more images and heads than its val split).
EXP_PARAM, EXP_VALUE = "evaluate.synthetic_val.split", "train"


def sh(cmd: list[str], cwd: Path, timeout: int = 1800, check: bool = True) -> str:
    res = subprocess.run(
        ["timeout", "-k", "20", str(timeout), *cmd], cwd=cwd, env=tool_env(), capture_output=True, text=True
    )
    out = res.stdout + res.stderr
    if check:
        assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{out[-8000:]}"
    return out


def write_dvc_yaml(project: Path) -> dict:
    """dvc.yaml for the copy, generated from its own rules and params (the DAG of the checkout under test)."""
    from vggheads.dvc_sync import build, render

    doc = build(project / "Snakefile", project / "params.yaml")
    (project / "dvc.yaml").write_text(render(doc))
    return doc


def stage_names(doc: dict) -> set[str]:
    """Every DVC stage name, foreach stages expanded (``extract_poses@00000``)."""
    names = set()
    for name, stage in doc["stages"].items():
        names |= {f"{name}@{item}" for item in stage["foreach"]} if "foreach" in stage else {name}
    return names


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def lock_outs(project: Path) -> dict[str, str]:
    """Every output path recorded in dvc.lock (outs, metrics, plots) -> its md5 (``.dir`` for folders)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def file_digests(project: Path, paths) -> dict[str, str]:
    """md5 of every file under the given outputs (files and folders, DVC-ignored markers aside)."""
    digests = {}
    for rel in paths:
        p = project / rel
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        assert files, f"{rel}: missing or empty"
        for f in files:
            if f.name != ".snakemake_timestamp":
                digests[f.relative_to(project).as_posix()] = hashlib.md5(f.read_bytes()).hexdigest()
    return digests


def git_commit(project: Path, message: str, *paths: str) -> None:
    sh([*GIT, "add", "-A", *paths] if paths else [*GIT, "add", "-A"], project)
    sh([*GIT, "commit", "-q", "--allow-empty", "-m", message], project)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The tiny project as a git repository, reproduced once by `dvc repro` from a clean state."""
    project = copy_project(tmp_path_factory.mktemp("dvc"), tiny_params())
    doc = write_dvc_yaml(project)
    sh(["git", "init", "-q"], project)
    git_commit(project, "tiny vggheads")
    assert not (project / "data" / "captions").exists() and not (project / ".dvc" / "cache").exists()
    log = sh(["dvc", "repro"], project, timeout=3000)
    git_commit(project, "dvc repro", "dvc.lock")
    return project, doc, log


def test_committed_dvc_config_is_offline():
    """Analytics off, and `dvc plots` pages built from the vendored, inlined vega template."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    assert cfg.get("core", "analytics").strip().lower() == "false"
    template = (REPO / ".dvc" / cfg.get("plots", "html_template").strip()).resolve()
    assert template == REPO / "workflow" / "report" / "dvc_plots.html"
    html = template.read_text()
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC's CDN <script> tags go into {scripts}
    assert not re.search(r"<script[^>]+src=", html), "the template must inline vega, not load it"
    for lib in ("vega@5", "vega-lite@5", "vega-embed@6"):
        assert f"/* {lib}" in html, f"{lib} is not inlined"
    out = sh(["dvc", "config", "core.analytics"], REPO, timeout=120).strip()
    assert out.splitlines()[-1] == "false"


@slow
def test_repro_from_a_clean_state_runs_every_stage(repo):
    project, doc, log = repo
    assert ran_stages(log) == stage_names(doc)
    status = sh(["dvc", "status"], project)
    assert "Data and pipelines are up to date" in status, status
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == stage_names(doc)
    outs = lock_outs(project)
    assert "data/manifest/heads.parquet" in outs and "metrics/dataset_card.json" in outs
    file_digests(project, outs)  # every recorded output exists and is not empty
    # DVC first, then Snakemake: it finds nothing to redo in what DVC made
    assert "Nothing to be done" in sh(["snakemake", "--dry-run"], project)


@slow
def test_exp_run_reruns_only_the_affected_stage_and_metrics_diff_shows_it(repo):
    project, doc, _ = repo
    log = sh(["dvc", "exp", "run", "-S", f"{EXP_PARAM}={EXP_VALUE}"], project, timeout=3000)
    try:
        assert ran_stages(log) == {"evaluate"}, log[-4000:]
        skipped = set(re.findall(r"Stage '([^']+)' didn't change, skipping", log))
        assert skipped == stage_names(doc) - {"evaluate"}
        params = json.loads(sh(["dvc", "params", "diff", "--json"], project))
        assert params["params.yaml"][EXP_PARAM]["new"] == EXP_VALUE, params
        diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], project))
        changed = {
            f"{path}:{key}"
            for path, metrics in diff.items()
            if path.startswith("metrics/evaluate/")
            for key, d in metrics.items()
            if d.get("diff") not in (None, 0) and "seconds" not in key
        }
        assert changed, f"no evaluation metric changed with {EXP_PARAM}={EXP_VALUE}: {diff}"
        assert set(diff) <= {m for stage in doc["stages"].values() for m in stage.get("metrics") or []}
        exps = json.loads(sh(["dvc", "exp", "show", "--json"], project))
        assert len(json.dumps(exps)) > 0 and EXP_PARAM.split(".")[-1] in json.dumps(exps)
    finally:  # back to the committed baseline for the tests below
        sh(["git", "checkout", "--", "params.yaml", "dvc.lock"], project)
        sh(["dvc", "checkout", "--force"], project)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], project)


@slow
def test_metrics_show_lists_every_declared_metrics_file(repo):
    project, doc, _ = repo
    declared = {m for stage in doc["stages"].values() for m in (stage.get("do", stage).get("metrics") or [])}
    assert any(m.startswith("metrics/evaluate/") for m in declared) and "metrics/dataset_card.json" in declared
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], project))
    files = shown[""]["data"] if "" in shown else next(iter(shown.values()))["data"]
    assert set(files) == declared
    for path, entry in files.items():
        assert entry.get("data"), f"{path}: DVC read no metrics ({entry})"
    text = sh(["dvc", "metrics", "show"], project)
    assert "metrics/evaluate/" in text


@slow
def test_plots_show_writes_a_page_that_needs_no_network(repo):
    project, doc, _ = repo
    sh(["dvc", "plots", "show"], project)  # .dvc/config's plots.html_template: the vendored template
    page = project / "dvc_plots" / "index.html"
    html = page.read_text()
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", html), "the page loads a script from the network"
    assert "cdn.jsdelivr" not in html and "/* vega-embed@" in html  # the library itself, inline
    declared = {p for stage in doc["stages"].values() for p in (stage.get("do", stage).get("plots") or [])}
    assert {"plots/dataset", "plots/evaluate"} <= declared
    # every image is a local file beside the page; every CSV plot got a vega div
    outside_scripts = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    images = re.findall(r"<img[^>]+src=\"([^\"]+)\"", outside_scripts)
    assert images and all(not src.startswith("http") and (page.parent / src).is_file() for src in images), images
    csvs = [p for p in (project / "plots").rglob("*.csv")]
    assert csvs and html.count("vegaEmbed('#") >= len(csvs)  # one vega chart per CSV plot
    shown = json.loads(sh(["dvc", "plots", "show", "--json"], project))["data"]
    files = {
        p.relative_to(project).as_posix()
        for d in ("dataset", "evaluate", "train")
        for p in (project / "plots" / d).glob("*")
        if p.suffix in (".csv", ".png")
    }
    assert files and files <= set(shown), sorted(files - set(shown))


@slow
def test_dvc_commit_records_a_snakemake_run(repo):
    """The README's workflow: Snakemake runs the DAG outside DVC, then `dvc commit` records it."""
    project, _, _ = repo
    params = yaml.safe_load((project / "params.yaml").read_text())
    section, key = EXP_PARAM.rsplit(".", 1)
    node = params
    for part in section.split("."):
        node = node[part]
    node[key] = EXP_VALUE
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The outputs here were made by DVC, so Snakemake has no record of the params they were made
    # with (its params trigger cannot fire): name the rule to rerun (docs/cluster.md).
    log = sh(["snakemake", "--cores", "2", "--forcerun", "evaluate"], project, timeout=3000)
    assert "rule evaluate:" in log and "rule train:" not in log, log[-3000:]
    status = sh(["dvc", "status"], project)
    assert "evaluate" in status and "changed" in status, status
    sh(["dvc", "commit", "--force", "--no-relink"], project)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], project)
    assert "Nothing to be done" in sh(["snakemake", "--dry-run"], project)  # and the tools agree
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    recorded = lock["stages"]["evaluate"]["params"]["params.yaml"]
    for part in EXP_PARAM.split("."):
        recorded = recorded[part]
    assert recorded == EXP_VALUE


@slow
def test_dvc_commit_after_a_whole_snakemake_run_leaves_both_tools_agreed(tiny_run, tmp_path):
    """The README's order: `snakemake`, then `dvc commit --force --no-relink`. DVC then has every
    output recorded and Snakemake still plans nothing (a relinking commit rewrites every output's
    modification time in stage order, and Snakemake then plans reruns of what looks older)."""
    project = tiny_run.clone(tmp_path / "project")
    write_dvc_yaml(project)
    sh(["git", "init", "-q"], project)
    git_commit(project, "a finished snakemake run")
    assert "Nothing to be done" in sh(["snakemake", "--dry-run"], project)
    mtimes = {p: p.stat().st_mtime_ns for p in (project / "data").rglob("*") if p.is_file()}
    sh(["dvc", "commit", "--force", "--no-relink"], project, timeout=600)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], project)
    assert "Nothing to be done" in sh(["snakemake", "--dry-run"], project)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    log = sh(["dvc", "repro"], project, timeout=600)
    assert not ran_stages(log), log[-3000:]  # and DVC reproduces nothing either


@slow
def test_push_pull_round_trip_restores_every_artifact(repo, tmp_path):
    project, _, _ = repo
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-d", "--local", "store", str(remote)], project)
    sh(["dvc", "push"], project)
    outs = lock_outs(project)
    before = file_digests(project, outs)
    for rel in outs:
        p = project / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    assert "deleted" in sh(["dvc", "status"], project)
    sh(["dvc", "pull"], project)
    assert file_digests(project, outs) == before
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], project)


@slow
def test_dvc_commit_records_a_fresh_snakemake_run(tmp_path):
    """A checkout where only Snakemake ever ran (no dvc.lock): `dvc commit` records it, folders included."""
    project = copy_project(tmp_path, tiny_params())
    write_dvc_yaml(project)
    sh(["git", "init", "-q"], project)
    git_commit(project, "tiny vggheads")
    sh(["snakemake", "--cores", "2", "data/poses/00000.parquet", "data/poses/00001.parquet"], project)
    assert (project / "data/poses/00000/.snakemake_timestamp").exists()  # ignored by DVC (.dvcignore)
    stages = ["sample_captions", "extract_poses"]
    assert "Data and pipelines are up to date" not in sh(["dvc", "status", *stages], project)
    sh(["dvc", "commit", "--force", "--no-relink", *stages], project)
    assert "Data and pipelines are up to date" in sh(["dvc", "status", *stages], project)
    recorded = lock_outs(project)
    assert {"data/poses/00000", "data/poses/00001.parquet", "data/captions/00000.parquet"} <= set(recorded)
    # DVC now reproduces nothing for them: the Snakemake outputs are the recorded ones
    log = sh(["dvc", "repro", "--single-item", *[f"{s}@{x}" for s in stages for x in ("00000", "00001")]], project)
    assert not ran_stages(log), log[-3000:]
    # and when DVC does rerun one, it records the same hashes: the folder Snakemake wrote (with its
    # .snakemake_timestamp marker) and the one DVC wrote (without) are the same DVC output.
    log = sh(["dvc", "repro", "--force", "--single-item", "extract_poses@00000"], project)
    assert ran_stages(log) == {"extract_poses@00000"}
    assert not (project / "data/poses/00000/.snakemake_timestamp").exists()
    assert lock_outs(project) == recorded
