"""`snakemake --report report.html` after a tiny run: the dataset card plots, sample renders with
their labels drawn, training curves and the evaluation tables are in the (self-contained) page.

The outputs are marked in the rules with ``report(...)`` (categories below) and captioned by the
files in ``workflow/report/``; the page embeds every file as a data URI, which this test decodes.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, copy_project, tiny_params, tool_env

pytestmark = pytest.mark.slow

CATEGORIES = {"dataset": "Dataset card", "samples": "Samples", "training": "Training", "evaluation": "Evaluation"}


def sh(cmd, cwd, timeout=2400):
    res = subprocess.run(
        ["timeout", "-k", "20", str(timeout), *cmd], cwd=cwd, env=tool_env(), capture_output=True, text=True
    )
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{(res.stdout + res.stderr)[-8000:]}"
    return res.stdout + res.stderr


def _js_value(html: str, script_id: str, var: str):
    m = re.search(rf'<script id="{script_id}">\s*var {var} = (.*?);\s*</script>', html, flags=re.S)
    assert m, f"no <script id={script_id}> in the report"
    return json.loads(m.group(1))


def _data(uri: str) -> bytes:
    assert uri.startswith("data:"), uri[:80]
    return base64.b64decode(uri.split("base64,", 1)[1])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("report"), tiny_params())
    sh(["snakemake", "--cores", "2"], project)
    sh(["snakemake", "--report", "report.html"], project, timeout=600)
    html = (project / "report.html").read_text()
    results = _js_value(html, "results", "results")
    categories = _js_value(html, "categories", "categories")
    return project, html, results, categories


def _by_rule(results: dict, rule: str) -> dict:
    return {path: r for path, r in results.items() if r["job_properties"]["rule"] == rule}


def test_report_is_self_contained(report):
    _, html, results, _ = report
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", html), (
        "the report loads from the network"
    )
    assert results and all(r["data_uri"].startswith("data:") for r in results.values())
    desc = _js_value(html, "workflow-desc", "workflow_desc")
    assert "vggheads" in desc and "Dataset card" in desc  # workflow/report/workflow.rst, rendered


def test_report_has_the_dataset_card_plots(report):
    project, _, results, categories = report
    assert CATEGORIES["dataset"] in json.dumps(categories)
    card = _by_rule(results, "build_manifest")
    pngs = sorted(p.relative_to(project).as_posix() for p in (project / "plots" / "dataset").glob("*.png"))
    assert pngs, "build_manifest wrote no card plots"
    shown = {path for path, r in card.items() if r["mime_type"] == "image/png"}
    assert set(pngs) <= shown, f"card plots missing from the report: {set(pngs) - shown}"
    for path in pngs:
        assert _data(card[path]["data_uri"]) == (project / path).read_bytes()
        assert "dataset card" in card[path]["caption"].lower()


def test_report_has_sample_renders_with_their_labels_drawn(report):
    from PIL import Image

    project, _, results, categories = report
    assert CATEGORIES["samples"] in json.dumps(categories)
    samples = {
        path: r
        for path, r in results.items()
        if r["mime_type"] == "image/png" and r["job_properties"]["rule"] not in ("build_manifest", "train", "evaluate")
    }
    assert samples, "no sample renders in the report"
    checked = 0
    for path, r in samples.items():
        sample = Path(path).stem
        shard = sample.split("_")[0]
        render = project / "data" / "render" / shard / f"{sample}.png"
        assert render.exists(), f"{path}: no render {render} for this sample"
        drawn = Image.open(io.BytesIO(_data(r["data_uri"]))).convert("RGB")
        plain = Image.open(render).convert("RGB")
        # the overlay is the render, enlarged, with marks on it: not the render itself
        assert drawn.size[0] >= plain.size[0] and drawn.size[0] * plain.size[1] == drawn.size[1] * plain.size[0]
        assert drawn.tobytes() != plain.resize(drawn.size, Image.NEAREST).tobytes()
        assert "landmarks" in r["caption"]
        checked += 1
    shards = {Path(p).stem.split("_")[0] for p in samples}
    assert checked and len(shards) >= 1


def test_report_has_the_evaluation_tables_and_training_curves(report):
    project, _, results, categories = report
    cats = json.dumps(categories)
    assert CATEGORIES["evaluation"] in cats and CATEGORIES["training"] in cats
    evaluation = _by_rule(results, "evaluate")
    table = "reports/evaluate/results.md"
    assert table in evaluation, list(evaluation)
    text = (project / table).read_text()
    assert _data(evaluation[table]["data_uri"]).decode() == text
    rows = [line for line in text.splitlines() if line.startswith("|") and "---" not in line]
    assert rows, "the results table has no rows"
    caption = evaluation[table]["caption"]
    import html as _html

    for row in rows[:3]:  # the table itself is shown in the caption (not only downloadable)
        assert _html.escape(row.strip(), quote=False) in caption, row
    training = _by_rule(results, "train")
    assert any(p.endswith("curves.png") for p in training) and any(p.endswith("predictions.png") for p in training)


def test_report_captions_exist_for_every_category():
    captions = {p.name for p in (REPO / "workflow" / "report").glob("*.rst")}
    assert {
        "workflow.rst",
        "dataset_card.rst",
        "samples.rst",
        "training.rst",
        "evaluation.rst",
        "evaluation_plots.rst",
    } <= captions
