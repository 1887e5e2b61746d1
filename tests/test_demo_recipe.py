"""The demo scale (workflow/recipes/demo.yaml, `make demo`): valid over params.yaml, only sizes changed,
and the DAG it plans (a dry run: thousands of images, one job per shard)."""

from __future__ import annotations

import yaml

from conftest import REPO, copy_project, merge, run_tool

RECIPE = REPO / "workflow" / "recipes" / "demo.yaml"


def _leaves(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_the_demo_is_valid_over_params_yaml_and_changes_only_sizes():
    from vggheads.config import validate

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    recipe = yaml.safe_load(RECIPE.read_text())
    merged = validate(merge(base, recipe), str(RECIPE))
    d = merged["dataset"]
    assert d["shards"] * d["samples_per_shard"] >= 2000
    # the scenes stay the defaults' ones: no pose, render or scene key is touched
    assert _leaves(recipe) <= {
        "dataset.shards",
        "dataset.samples_per_shard",
        "manifest.val_shards",
        "detector.labelled.extra_images",
        "detector.epochs",
        "train.epochs",
    }
    assert merged["poses"] == base["poses"] and merged["render"] == base["render"]


def test_make_demo_plans_one_job_per_shard(tmp_path):
    project = copy_project(tmp_path / "p")
    out = run_tool(["snakemake", "-n", "--cores", "2", "--quiet", "rules", "--configfile", str(RECIPE)], project)
    counts = dict(
        line.split()[:2]
        for line in out.splitlines()
        if line.strip() and line.split()[0] in ("render", "train", "evaluate")
    )
    assert counts == {"render": "12", "train": "1", "evaluate": "1"}, out
    assert (
        "demo: env" in (REPO / "Makefile").read_text()
        and "workflow/recipes/demo.yaml" in (REPO / "Makefile").read_text()
    )
