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
        (tmp_path / f"data/captions/{shard}.stats.json").write_text(
            json.dumps({"shard": shard, "rows_in_shard": 10, "kept": kept, "dropped": {"nsfw": 1, "near_duplicate": 0}})
        )
    (tmp_path / "metrics/evaluate").mkdir(parents=True)
    (tmp_path / "metrics/detector.json").write_text(
        json.dumps({"heldout": {"recall": 0.9, "precision": 0.8, "ap50": 0.85}})
    )
    (tmp_path / "metrics/evaluate/aflw2000.json").write_text(json.dumps({"model": {"mae_deg": 4.5, "protocol": {}}}))
    text = summarise()
    assert "rows_in_shard 20; kept 7; dropped: nsfw 2" in text
    assert "held-out images: recall 0.9; precision 0.8; ap50 0.85" in text
    assert "model: mae_deg 4.5" in text


def test_summary_prints_the_model_figures_under_keys_that_name_their_units(tmp_path, monkeypatch):
    """metrics/train.json holds AP50, FR and matched as fractions and NME in percent (``*_pct``);
    the summary prints each figure in its JSON unit under its key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/train.json").write_text(
        json.dumps(
            {
                "epochs": 16,
                "train_images": 750,
                "val_images": 250,
                "init": "detector",
                "val": {
                    "ap50": 0.9775,
                    "nme68_pct": 6.73,
                    "nme_pct": 6.1,
                    "fr": 0.84,
                    "matched": 0.98,
                    "nme68_anchor_pct": 7.07,
                },
                "untrained": {"ap50": 0.0, "nme68_pct": None, "fr": None, "matched": 0.0, "nme68_anchor_pct": 95.3},
            }
        )
    )
    text = summarise()
    assert "epochs 16; train_images 750; val_images 250; init detector" in text
    assert "val: ap50 0.978; nme68_pct 6.73; nme_pct 6.1; fr 0.84; matched 0.98; nme68_anchor_pct 7.07" in text
    assert "untrained: ap50 0; matched 0; nme68_anchor_pct 95.3" in text
    (tmp_path / "metrics/label_quality.json").write_text(
        json.dumps({"truth": {"detection_recall": 0.956, "nme_pct": 0.0, "failure_rate": 0, "geodesic_deg": 3e-7}})
    )
    assert "truth: detection_recall 0.956; nme_pct 0; failure_rate 0; geodesic_deg 3e-07" in summarise()
