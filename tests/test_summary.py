"""`vggheads summary` reads what a run wrote."""

import json

from vggheads.commands.summary import summarise


def test_summary_of_an_empty_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "nothing yet" in summarise()


def test_summary_sums_shards_and_reads_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/captions").mkdir(parents=True)
    for shard, kept in (("00000", 3), ("00001", 4)):
        (tmp_path / f"data/captions/{shard}.stats.json").write_text(json.dumps(
            {"shard": shard, "rows_in_shard": 10, "kept": kept, "dropped": {"nsfw": 1, "near_duplicate": 0}}))
    (tmp_path / "metrics/evaluate").mkdir(parents=True)
    (tmp_path / "metrics/detector.json").write_text(json.dumps({"heldout": {"recall": 0.9, "precision": 0.8, "ap50": 0.85}}))
    (tmp_path / "metrics/evaluate/aflw2000.json").write_text(json.dumps({"model": {"mae": 4.5, "protocol": {}}}))
    text = summarise()
    assert "rows_in_shard 20; kept 7; dropped: nsfw 2" in text
    assert "held-out images: recall 0.9; precision 0.8; ap50 0.85" in text
    assert "model: mae 4.5" in text
