"""The recipe reproducing the paper's rows from its released model (workflow/recipes/paper_rows.yaml):
valid over params.yaml, one Snakemake call that evaluates without training, and the evaluate stage
on the real benchmark samples with a stand-in of the released model."""

from __future__ import annotations

import json

import yaml

from conftest import REPO, copy_project, merge, run_tool
from test_release_model import standins  # noqa: F401  (module fixture: stand-ins of the released contract)

RECIPE = REPO / "workflow" / "recipes" / "paper_rows.yaml"


def _recipe_on_samples(shared_data, standins, head_model_file) -> dict:  # noqa: F811
    """The recipe with its EDIT paths on the real samples (AFLW2000-3D, WIDER) and the ONNX stand-in."""
    recipe = yaml.safe_load(RECIPE.read_text())
    b = shared_data / "benchmarks"
    recipe["headmodel"]["flame"] = str(head_model_file)
    e = recipe["evaluate"]
    e["vggheads_official"]["weights"] = str(standins / "vgg_heads_l.onnx")
    e["vggheads_official"]["device"] = "cpu"
    e["aflw2000"]["root"] = str(b / "aflw2000_sample")
    e["wider"]["ground_truth"] = e["wider"]["images"] = str(b / "wider_val")
    for key in ("root", "annotations"):
        e["biwi"][key] = None  # no BIWI frames, no DAD-3DHeads, no FDDB pictures among the samples
    e["dad3dheads"]["root"] = None
    e["fddb"]["folds"] = e["fddb"]["images"] = None
    return recipe


def test_the_recipe_is_valid_over_params_yaml():
    from vggheads.config import validate

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    recipe = yaml.safe_load(RECIPE.read_text())
    merged = validate(merge(base, recipe), str(RECIPE))
    assert merged["evaluate"]["systems"] == ["vggheads-official"]
    assert merged["evaluate"]["vggheads_official"]["preprocess"] == "evaluation"
    assert merged["evaluate"]["wider"]["use_face_box"] is False and merged["evaluate"]["fddb"]["min_score"] == 0.5


def test_one_snakemake_call_evaluates_without_training(shared_data, standins, head_model_file, tmp_path):  # noqa: F811
    project = copy_project(tmp_path / "p")
    (project / "recipe.yaml").write_text(yaml.safe_dump(_recipe_on_samples(shared_data, standins, head_model_file)))
    # the target first: --configfile takes every argument after it
    out = run_tool(
        [
            "snakemake",
            "reports/evaluate/results.md",
            "-n",
            "--cores",
            "2",
            "--quiet",
            "rules",
            "--configfile",
            "recipe.yaml",
        ],
        project,
    )
    rules = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert "evaluate" in rules and "train" not in rules
    assert str(standins / "vgg_heads_l.onnx") in run_tool(
        ["snakemake", "reports/evaluate/results.md", "-n", "--cores", "2", "--configfile", "recipe.yaml"], project
    )


def test_evaluate_stage_with_the_recipe_on_the_samples(shared_data, standins, head_model_file, tmp_path, params):  # noqa: F811
    from vggheads.stages.evaluate import EvaluateJob, evaluate

    p = merge(params, _recipe_on_samples(shared_data, standins, head_model_file))
    p["tracking"]["enabled"] = False
    summary = evaluate(
        p,
        EvaluateJob(
            metrics=tmp_path / "metrics",
            plots=tmp_path / "plots",
            report=tmp_path / "results.md",
            head_model=standins / "head.npz",
        ),
    )
    assert set(summary) == {"synthetic_val", "aflw2000", "wider"}
    aflw = json.loads((tmp_path / "metrics" / "aflw2000.json").read_text())["vggheads-official"]
    # the untrained stand-in scores below the protocol's 0.1 fallback: every image is a counted miss
    assert aflw["protocol"] and aflw["images"] == 8 and aflw["missed"] == 8
    wider = json.loads((tmp_path / "metrics" / "wider.json").read_text())["vggheads-official"]
    assert "ap_hard" in wider and wider["detections"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "vggheads-official" in table and "3.76" in table, "the paper's VGGHeads row stands next to the measured one"
