"""DVC sees every line of package code a stage runs (``vggheads.dvc_sync.code_deps``).

The generated stages list the package modules their command imports, transitively and imports
inside functions included, as whole folders where a folder is used whole. The end-to-end check
edits a deep module in a copy of the finished tiny run and asks ``dvc status`` which stages changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_dvc import GIT, sh, write_dvc_yaml


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d + "/") for d in deps)


def test_code_deps_are_transitive_and_include_imports_inside_functions():
    from vggheads.dvc_sync import _command_module, code_deps, module_closure

    deps = code_deps("render", "vggheads render")
    # stages/render.py imports render/; render/procedural.py imports geometry/ and headmodel/ inside
    # functions: both are two or more imports away from the stage module
    lbs = REPO / "src/vggheads/geometry/lbs.py"
    assert covered(lbs, deps), deps
    assert covered(REPO / "src/vggheads/headmodel/format.py", deps), deps
    assert "src/vggheads/cli.py" in deps and "src/vggheads/offline.py" in deps
    # a module the render stage never imports stays out
    assert not covered(REPO / "src/vggheads/stages/train.py", deps)
    assert not covered(REPO / "src/vggheads/evaluation/wider.py", deps)
    # every module the closure reaches is covered by a listed path, and a folder is listed only when
    # every module in it is reached
    module = _command_module("render", "vggheads render")
    closure = module_closure([module, REPO / "src/vggheads/cli.py"])
    assert all(covered(p, deps) for p in closure)
    for dep in deps:
        folder = REPO / dep
        if folder.is_dir():
            assert set(folder.rglob("*.py")) <= closure, dep


def test_code_deps_follow_module_names_in_strings():
    """render backends are imported by name (``importlib.import_module`` of a table entry)."""
    from vggheads.dvc_sync import _imported

    assert "vggheads.render.procedural" in _imported(REPO / "src/vggheads/render/__init__.py")


def test_generated_dvc_yaml_lists_the_deep_code_of_render():
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    deps = doc["stages"]["render"]["do"]["deps"]
    assert covered(REPO / "src/vggheads/geometry/lbs.py", deps), deps


@pytest.mark.slow
def test_dvc_status_reports_a_stage_whose_deep_module_changed(tiny_run, tmp_path):
    """Edit ``geometry/lbs.py`` in a copy of the finished tiny run recorded by ``dvc commit``:
    ``dvc status`` names render (two imports away from it), not sample_captions (which never uses it)."""
    project = tiny_run.clone(tmp_path / "project")
    write_dvc_yaml(project)
    sh(["git", "init", "-q"], project)
    sh([*GIT, "add", "-A"], project)
    sh([*GIT, "commit", "-q", "-m", "tiny run"], project)
    stages = ["render", "sample_captions"]
    sh(["dvc", "commit", "--force", "--no-relink", *stages], project, timeout=600)
    assert "Data and pipelines are up to date" in sh(["dvc", "status", *stages], project)
    lbs = project / "src/vggheads/geometry/lbs.py"
    lbs.write_text(lbs.read_text() + "\n# an edit deep in the geometry\n")
    status = sh(["dvc", "status", *stages], project)
    assert "render@00000" in status and "render@00001" in status, status
    assert "modified:" in status and "src/vggheads/geometry" in status, status
    assert "sample_captions" not in status, status
