"""The workflow itself: lint, a dry run that resolves to the end, the SLURM profile, dvc.yaml in sync."""

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_project, tiny_params, tool_env


def snakemake(*args, cwd=REPO, timeout=300):
    return subprocess.run(
        ["snakemake", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout
    )


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
    rules = [
        r
        for r in subprocess.run(
            ["snakemake", "--list-rules"], cwd=project, env=tool_env(), capture_output=True, text=True
        ).stdout.split()
        if r != "all"
    ]
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
    rules = subprocess.run(
        ["snakemake", "--list-rules"], cwd=REPO, env=tool_env(), capture_output=True, text=True
    ).stdout.split()
    assert set(stages) == {r for r in rules if r != "all"}
    n_shards = yaml.safe_load((REPO / "params.yaml").read_text())["dataset"]["shards"]
    assert stages["sample_captions"]["foreach"] == [f"{i:05d}" for i in range(n_shards)]
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


# ---------------------------------------------------------------- a running job vs. other snakemake calls

GATE_SHIM = """#!/usr/bin/env bash
# Stands in front of the real vggheads: each job first writes half of its --out file when
# SHIM_PARTIAL is set (as a job killed mid-write would leave it), says it started, then waits for
# the test to open the gate before running the real command.
if [ -n "${{SHIM_PARTIAL:-}}" ]; then
  prev=""; for a in "$@"; do [ "$prev" = "--out" ] && mkdir -p "$(dirname "$a")" && echo half > "$a"; prev="$a"; done
fi
touch "{gate}/started"
while [ ! -e "{gate}/go" ]; do sleep 0.2; done
exec "{real}" "$@"
"""


def start_gated_job(project, tmp_path, target, **env):
    """`snakemake --cores 1 TARGET` in the background, its job held at its start; returns (process, gate)."""
    import os
    import shutil
    import sys
    import time

    gate = tmp_path / "gate"
    gate.mkdir()
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    real = shutil.which("vggheads", path=str(Path(sys.executable).parent))
    (shim_dir / "vggheads").write_text(GATE_SHIM.format(gate=gate, real=real))
    (shim_dir / "vggheads").chmod(0o755)
    full_env = tool_env(
        {"PATH": f"{shim_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "MLFLOW_TRACKING_URI": "", **env}
    )
    proc = subprocess.Popen(
        ["snakemake", "--cores", "1", target],
        cwd=project,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (gate / "started").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    return proc, gate


def test_a_concurrent_dry_run_with_other_params_does_not_change_a_running_job(tmp_path):
    """A job reads the params it was scheduled with, whatever another snakemake parses meanwhile."""
    project = copy_project(tmp_path / "project", tiny_params())
    target = "data/captions/00000.parquet"
    proc, gate = start_gated_job(project, tmp_path, target)
    try:
        dry = snakemake("--dry-run", "--config", "seed=7", cwd=project)  # while the job waits at its start
        assert dry.returncode == 0, dry.stdout + dry.stderr
    finally:
        (gate / "go").touch()
        out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    first = (project / target).read_bytes()
    # the same job, undisturbed, writes the same bytes
    again = snakemake("--cores", "1", target, "--forcerun", "sample_captions", cwd=project)
    assert again.returncode == 0 and "rule sample_captions:" in again.stdout + again.stderr, again.stderr
    assert (project / target).read_bytes() == first
    # and Snakemake knows which params made it: nothing to do; with another seed, a rerun
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake("--dry-run", target, cwd=project))
    res = snakemake("--dry-run", target, "--config", "seed=7", cwd=project)
    assert "sample_captions" in res.stdout + res.stderr and "Nothing to be done" not in res.stdout + res.stderr


def test_the_default_profile_is_applied(tmp_path):
    """profiles/default/ (Snakemake looks beside the root Snakefile) is loaded by a plain `snakemake`:
    with its rerun-incomplete, the output of a job killed mid-write is redone, not a hard stop."""
    import os
    import signal

    project = copy_project(tmp_path / "project", tiny_params())
    target = "data/captions/00000.parquet"
    proc, gate = start_gated_job(project, tmp_path, target, SHIM_PARTIAL="1")
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, as a node failure would
    proc.communicate(timeout=60)
    assert (project / target).read_text() == "half\n"
    without = snakemake("--dry-run", "--workflow-profile", "none", target, cwd=project)
    assert without.returncode != 0 and "incomplete" in (without.stdout + without.stderr).lower()
    res = snakemake("--dry-run", target, cwd=project)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text
    assert "Using workflow specific profile profiles/default" in text
    assert "rule sample_captions:" in text  # planned again (Snakemake gives "Forced execution" as the reason)
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True


def test_the_network_check_sees_native_dns_queries_and_onnxruntime_telemetry_is_off():
    """What the end-to-end strace check flags (tests/test_e2e.py), and the switches it relies on."""
    import os

    from conftest import remote_connects
    from vggheads.offline import OFFLINE_ENV

    trace = (
        '81 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT\n'
        '81 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0\n'
        '81 connect(5, {sa_family=AF_INET, sin_port=htons(5000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n'
        "82 connect(4, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), "
        'inet_pton(AF_INET6, "2603:1030::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH\n'
        '82 connect(4, {sa_family=AF_INET6, sin6_port=htons(80), inet_pton(AF_INET6, "::1", &sin6_addr)}, 28) = 0\n'
    )
    found = remote_connects(trace)
    assert len(found) == 2 and "10.255.255.53" in found[0] and "2603:1030::1" in found[1]
    # scontrol's controller lookup (the SLURM plugin runs it where SLURM is installed) is the one exemption
    slurm = (
        '90 execve("/usr/bin/scontrol", ["scontrol", "show", "config"], 0x55 /* 35 vars */) = 0\n'
        '90 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0\n'
        '90 connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("10.1.2.3")}, 16) = 0\n'
    )
    assert remote_connects(slurm) == [slurm.splitlines()[2]]
    assert OFFLINE_ENV["ORT_DISABLE_TELEMETRY"] == "1" and os.environ["ORT_DISABLE_TELEMETRY"] == "1"
    # every stage command calls configure() first: it sets the switch even where the caller did not
    import sys

    code = "import os; from vggheads.offline import configure; configure(); print(os.environ['ORT_DISABLE_TELEMETRY'])"
    env = {k: v for k, v in tool_env().items() if k != "ORT_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr


def test_every_rule_has_its_stage_module_and_stages_do_not_import_each_other():
    """A rule's code is found from its name in one step (src/vggheads/stages/<rule>.py, called as
    `vggheads <rule-name>`), and what two stages share lives in a library, not in one of them."""
    import re

    rules = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        rules |= set(re.findall(r"^\s*rule (\w+):", smk.read_text(), flags=re.M))
    stages_dir = REPO / "src" / "vggheads" / "stages"
    modules = {p.stem for p in stages_dir.glob("*.py") if p.stem != "__init__"}
    assert rules - {"all"} == modules
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^\s*rule (\w+):(.*?)(?=^\s*rule \w+:|\Z)", smk.read_text(), flags=re.M | re.S):
            if "shell:" in body:
                assert f'"vggheads {rule.replace("_", "-")}' in body, (
                    f"rule {rule} does not call `vggheads {rule.replace('_', '-')}`"
                )
    for path in stages_dir.glob("*.py"):
        text = path.read_text()
        sideways = re.findall(r"from \.(\w+) import|from vggheads\.stages\.(\w+) import|from \.\.stages", text)
        assert not sideways, f"{path.name} imports another stage: {sideways}"
