"""``dataset.source: release`` through the DAG: one import job per split, the manifests, then train and
evaluate exactly as on generated data; dvc.yaml generated from the same rules. The release tree is
a small one written by ``vggheads export`` (``test_release_import.toy_release``)."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import copy_project, run_tool, tiny_params
from test_release_import import toy_release  # noqa: F401  (module fixture)


@pytest.fixture(scope="module")
def release_project(tmp_path_factory, toy_release, head_model_file):  # noqa: F811
    params = tiny_params()
    params["dataset"]["source"] = "release"
    params["dataset"]["release"]["root"] = str(toy_release / "VGGHeads")
    params["headmodel"]["flame"] = str(head_model_file)  # any head-model file; the real FLAME in real use
    params["train"]["epochs"] = 2
    if "init" in params["train"]:  # no head detector is trained from the release: start from scratch
        params["train"]["init"] = "scratch"
    return copy_project(tmp_path_factory.mktemp("release_project"), params)


def test_the_dag_imports_each_split_and_skips_generation(release_project):
    out = run_tool(["snakemake", "-n", "--cores", "2", "--quiet", "rules"], release_project)
    counts = dict(
        line.split()[:2]
        for line in out.splitlines()
        if line.strip()
        and line.split()[0]
        in (
            "import_release",
            "release_manifest",
            "train",
            "evaluate",
            "render",
            "sample_captions",
            "build_manifest",
            "label_3dmm",
        )
    )
    assert counts == {"import_release": "2", "release_manifest": "1", "train": "1", "evaluate": "1"}


def test_dvc_yaml_from_the_release_rules(release_project, toy_release):  # noqa: F811
    from vggheads.dvc_sync import build

    doc = build(release_project / "Snakefile", release_project / "params.yaml")["stages"]
    assert "render" not in doc and "build_manifest" not in doc
    imp = doc["import_release"]
    assert imp["foreach"] == ["00000", "00002"]
    root = (toy_release / "VGGHeads" / "large").resolve()
    assert f"{root}/split_${{item}}/annotations" in imp["do"]["deps"]
    assert "dataset.release" in imp["do"]["params"]
    assert "data/manifest/heads.parquet" in doc["release_manifest"]["outs"]


def test_a_missing_release_or_split_stops_the_workflow_naming_the_key(release_project, tmp_path):
    project = copy_project(tmp_path, yaml.safe_load((release_project / "params.yaml").read_text()))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["dataset"]["release"]["splits"] = [0, 7]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    out = run_tool(["snakemake", "-n", "--cores", "1"], project, check=False)
    assert "dataset.release.splits: split_00007 not found" in out
    params["dataset"]["release"]["root"] = str(tmp_path / "nothing")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    out = run_tool(["snakemake", "-n", "--cores", "1"], project, check=False)
    assert "dataset.release.root" in out and "not found" in out and "CC BY-NC 4.0" in out


def test_a_missing_released_model_stops_the_workflow_naming_origin_and_licence(release_project, tmp_path):
    project = copy_project(tmp_path, yaml.safe_load((release_project / "params.yaml").read_text()))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"]["systems"] = ["vggheads-official"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    out = run_tool(["snakemake", "-n", "--cores", "1"], project, check=False)
    assert "models/vgg_heads_l.trcd" in out and "okupyn/vgg_heads" in out and "CC BY-NC 4.0" in out


@pytest.mark.slow
def test_train_and_evaluate_run_on_an_imported_release(release_project):
    run_tool(["snakemake", "--cores", "2"], release_project, timeout=2400)
    card = json.loads((release_project / "metrics" / "dataset_card.json").read_text())
    assert card["source"] == "release" and card["images"] == 12
    assert card["splits"]["val"]["images"] == 5 and card["splits"]["train"]["images"] == 7
    train = json.loads((release_project / "metrics" / "train.json").read_text())
    assert train["epochs"] == 2 and train.get("train_images") == 7
    assert (release_project / "data" / "model" / "model.safetensors").exists()
    assert json.loads((release_project / "metrics" / "evaluate" / "synthetic_val.json").read_text())["model"]
    stats = json.loads((release_project / "data" / "release" / "00002" / "stats.json").read_text())
    assert stats["images"] == 7 and stats["split_name"] == "train"
    assert not (release_project / "data" / "render").exists(), "nothing was generated"
