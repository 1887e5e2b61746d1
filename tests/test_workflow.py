"""The workflow itself: lint, a dry run that resolves to the end, the SLURM profile, dvc.yaml in sync."""

import subprocess

import pytest
import yaml

from conftest import REPO, copy_project, tiny_params, tool_env


def snakemake(*args, cwd=REPO, timeout=300):
    return subprocess.run(["snakemake", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)


# The environment is the project's venv (make env), not a per-rule conda env or container.
ALLOWED_LINTS = {"Specify a conda environment or container for each rule."}


def test_lint_finds_nothing_but_the_missing_conda_envs():
    res = snakemake("--lint")
    text = res.stdout + res.stderr
    found = {line.strip()[2:].rstrip(":") for line in text.splitlines() if line.strip().startswith("* ")}
    assert found <= ALLOWED_LINTS, text


def test_dry_run_resolves_every_rule_for_every_shard(tmp_path):
    project = copy_project(tmp_path, tiny_params())
    res = snakemake("--dry-run", "--forceall", cwd=project)
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    rules = [r for r in subprocess.run(["snakemake", "--list-rules"], cwd=project, env=tool_env(),
                                       capture_output=True, text=True).stdout.split() if r != "all"]
    for rule in rules:
        assert f"rule {rule}:" in text or f"localrule {rule}:" in text, f"rule {rule} not in the dry run"
    assert "data/poses/00001.parquet" in text


def test_slurm_profile_dry_run(tmp_path):
    project = copy_project(tmp_path, tiny_params())
    res = snakemake("--profile", "workflow/profiles/slurm", "--dry-run", cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr


def test_bad_params_stop_the_run_naming_the_key(tmp_path):
    params = tiny_params()
    params["poses"]["backend"] = "openpose"
    params["captions"]["typo_key"] = 1
    project = copy_project(tmp_path, params)
    res = snakemake("--dry-run", cwd=project)
    assert res.returncode != 0
    err = res.stdout + res.stderr
    assert "key 'poses.backend': expected one of 'procedural', 'ultralytics', got 'openpose'" in err
    assert "unknown key 'captions.typo_key'" in err
    assert "Traceback" not in err


def test_dvc_yaml_is_generated_from_the_rules():
    from vggheads.dvc_sync import sync

    ok, text = sync(check=True)
    assert ok, "dvc.yaml is out of date with the Snakemake rules: run `vggheads dvc-sync`"
    stages = yaml.safe_load(text)["stages"]
    rules = subprocess.run(["snakemake", "--list-rules"], cwd=REPO, env=tool_env(), capture_output=True,
                           text=True).stdout.split()
    assert set(stages) == {r for r in rules if r != "all"}
    assert stages["sample_captions"]["foreach"] == ["00000", "00001"]
    assert "--params params.yaml" in stages["sample_captions"]["do"]["cmd"]


def test_dvc_reads_the_pipeline():
    res = subprocess.run(["dvc", "dag", "--md"], cwd=REPO, env=tool_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "sample_captions@00000" in res.stdout and "extract_poses@00001" in res.stdout


@pytest.mark.parametrize("rule", ["sample_captions", "extract_poses", "render"])
def test_rules_are_thin_shell_calls_of_the_cli(rule):
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    block = text.split(f"rule {rule}:")[1].split("\nrule ")[0]
    for directive in ("log:", "benchmark:", "shell:"):
        assert directive in block, f"rule {rule} lacks {directive}"
    assert '"vggheads ' in block and "run:" not in block and "script:" not in block
