"""MLflow tracking: the default store in the project, artifacts that move with it, timings kept out of artefacts."""

import shutil
import sqlite3

from vggheads.tracking import is_timing, log_run, split_timings


def test_a_copied_project_logs_into_its_own_mlruns(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store: ./mlflow.db
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    (original / "card.json").write_text("{}")
    monkeypatch.chdir(original)
    log_run("build_manifest", {}, metrics={"images": 1}, artifacts=["card.json"])
    (location,) = (
        sqlite3.connect("mlflow.db")
        .execute("select artifact_location from experiments where name = 'vggheads'")
        .fetchone()
    )
    assert location == "mlruns/vggheads"
    shutil.copytree(original, copy)
    before = sorted(p.relative_to(original) for p in (original / "mlruns").rglob("*"))
    monkeypatch.chdir(copy)
    log_run("build_manifest", {}, metrics={"images": 2}, artifacts=["card.json"])
    assert sorted(p.relative_to(original) for p in (original / "mlruns").rglob("*")) == before
    assert len(list((copy / "mlruns" / "vggheads").glob("*/artifacts/card.json"))) == 2


def test_a_store_outside_the_project_keeps_an_absolute_artifact_location(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/store/mlflow.db")
    (tmp_path / "store").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    log_run("render", {"tracking": {"experiment": "elsewhere"}}, shard="00000", metrics={"images": 1})
    (location,) = (
        sqlite3.connect(tmp_path / "store" / "mlflow.db")
        .execute("select artifact_location from experiments where name = 'elsewhere'")
        .fetchone()
    )
    assert location == (tmp_path / "store" / "mlruns" / "elsewhere").as_uri()


def test_timings_are_split_from_what_artefacts_hold():
    stats = {
        "images": 2,
        "seconds": 1.5,
        "load_seconds": 3.0,
        "seconds_per_image": 0.7,
        "quality": {"truth": {"nme": 0.1, "heads_per_second": 40.0}},
        "seed": 3,
    }
    kept, timings = split_timings(stats)
    assert kept == {"images": 2, "quality": {"truth": {"nme": 0.1}}, "seed": 3}
    assert timings == {
        "seconds": 1.5,
        "load_seconds": 3.0,
        "seconds_per_image": 0.7,
        "quality": {"truth": {"heads_per_second": 40.0}},
    }
    assert not is_timing("seed") and not is_timing("images_per_shard") and is_timing("render_seconds")
