"""Head-mesh conditioning through the whole DAG (the scenario tests/configs/headmesh.yaml): tiny-sdxl
paints around the procedural scenes, the manifests hold the scenes' exact truth, the agreement is in
the filter's stats, its tables and the dataset card, and the agreement rule acts on it.

The run starts from a copy of the session's tiny run (captions, poses and head model are reused;
Snakemake redoes what the scenario's params change) and is shared by the tests below."""

import json

import numpy as np
import pytest
import yaml

import scenarios
from conftest import run_tool
from vggheads.schemas import read_table

pytestmark = pytest.mark.slow
SHARDS = ("00000", "00001")


def run(cmd, cwd):
    return run_tool(cmd, cwd, timeout=2400)


@pytest.fixture(scope="module")
def mesh_run(tiny_run, tmp_path_factory):
    scenario = scenarios.load("headmesh")
    project = tiny_run.clone(tmp_path_factory.mktemp("headmesh") / "project")
    (project / "headmesh.yaml").write_text(yaml.safe_dump(scenario["params"]))
    run(["snakemake", "--cores", "2", "--configfile", "headmesh.yaml"], project)
    scenarios.check_expectations(project, scenario["expect"])
    return project


def test_the_manifests_hold_the_scenes_exact_truth(mesh_run):
    manifest = read_table(mesh_run / "data/manifest/heads.parquet", "heads").to_pylist()
    images = read_table(mesh_run / "data/manifest/images.parquet", "images").to_pylist()
    assert len(manifest) > 0 and {r["backend"] for r in images} == {"tiny-sdxl"}
    truth = {}
    for shard in SHARDS:
        stats = json.loads((mesh_run / f"data/render/{shard}.stats.json").read_text())
        heads = read_table(mesh_run / f"data/render/{shard}.heads.parquet", "render_heads").to_pylist()
        assert stats["conditioning"] == "pose+head-mesh" and stats["scene_heads"] == len(heads) == stats["heads"] > 0
        for h in heads:
            truth.setdefault(h["sample_id"], []).append(h)
    for head in manifest:
        scene = truth[head["image_id"]]
        match = [t for t in scene if np.array_equal(np.float32(t["box"]), np.float32(head["box"]))]
        assert len(match) == 1, head["image_id"]
        np.testing.assert_array_equal(np.float32(head["flame_params"]), np.float32(match[0]["flame_params"]))
        np.testing.assert_array_equal(np.float32(head["landmarks"]), np.float32(match[0]["landmarks"]))
    kept = {r["image_id"] for r in images}
    assert sum(len(truth[s]) for s in kept) == len(manifest)  # every scene head of a kept image is labelled


def test_agreement_is_in_the_stats_the_tables_and_the_card(mesh_run):
    measured = 0
    for shard in SHARDS:
        stats = json.loads((mesh_run / f"data/filter/{shard}.stats.json").read_text())
        rows = read_table(mesh_run / f"data/filter/{shard}.agreement.parquet", "agreement").to_pylist()
        per_head = read_table(mesh_run / f"data/filter/{shard}.agreement_heads.parquet", "agreement_heads").to_pylist()
        rendered = read_table(mesh_run / f"data/render/{shard}.parquet", "render").num_rows
        assert len(rows) == rendered == stats["agreement"]["images"]
        assert len(per_head) == sum(r["scene_heads"] for r in rows)
        assert all(0.0 <= r["f1"] <= 1.0 for r in rows)
        assert stats["reasons"]["agreement"] == 0  # measured only (filter.agreement.enabled: false)
        measured += len(rows)
    card = json.loads((mesh_run / "metrics/dataset_card.json").read_text())
    assert card["agreement"]["images"] == measured and sum(card["agreement"]["histograms"]["f1"]["counts"]) == measured
    assert (mesh_run / "plots/dataset/agreement_f1.png").is_file()


def test_the_agreement_rule_acts_on_the_measured_numbers(mesh_run):
    (mesh_run / "strict.yaml").write_text("filter:\n  agreement:\n    enabled: true\n    min_f1: 0.9\n")
    targets = [f"data/filter/{s}.parquet" for s in SHARDS]
    run(["snakemake", *targets, "--cores", "2", "--configfile", "headmesh.yaml", "strict.yaml"], mesh_run)
    dropped = 0
    for shard in SHARDS:
        rows = {
            r["sample_id"]: r
            for r in read_table(mesh_run / f"data/filter/{shard}.agreement.parquet", "agreement").to_pylist()
        }
        filt = read_table(mesh_run / f"data/filter/{shard}.parquet", "filter").to_pylist()
        for f in filt:
            a = rows[f["sample_id"]]
            assert a["agree"] == (a["f1"] >= 0.9)
            if f["reason"] in ("", "agreement"):  # the paper's rules did not drop it first
                assert (f["reason"] == "agreement") == (not a["agree"])
        stats = json.loads((mesh_run / f"data/filter/{shard}.stats.json").read_text())
        assert stats["reasons"]["agreement"] == sum(f["reason"] == "agreement" for f in filt)
        dropped += stats["reasons"]["agreement"]
    assert dropped > 0  # random weights: the detector does not find the scenes' heads
