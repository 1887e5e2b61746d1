"""Stage download_images: img2dataset on real photos served on 127.0.0.1, failures counted, resume, same bytes."""

import copy
import json
import tarfile

import pytest

from photo_server import PhotoServer, real_photos
from vggheads.captions.download import FAILURE_CLASSES, decode, failure_class, iter_shard
from vggheads.errors import InputError
from vggheads.schemas import from_rows, read_table, write_table
from vggheads.stages.download_images import DownloadImagesJob, download_images


def rows_file(path, urls):
    rows = [
        {
            "sample_id": f"00000_{i:06d}",
            "shard": "00000",
            "source_file": "x",
            "source_row": i,
            "url": u,
            "caption": "a man",
            "prompt": "a man",
            "negative_prompt": "",
            "seed": i,
        }
        for i, u in enumerate(urls)
    ]
    write_table(from_rows("captions", rows), path, "captions")
    return path


@pytest.fixture
def cfg(params):
    p = copy.deepcopy(params)
    p["tracking"]["enabled"] = False
    p["captions"]["download"].update(image_size=128, timeout=2, retries=0, threads=4, part_size=4)
    return p


def test_failure_classes():
    assert failure_class("HTTP Error 404: Not Found") == "http_404"
    assert failure_class("HTTP Error 503: Service Unavailable") == "http_error"
    assert failure_class("<urlopen error timed out>") == "timeout"
    assert failure_class("Image decoding error") == "undecodable"
    assert failure_class("image too small") == "too_small"
    assert failure_class("Use of image disallowed by X-Robots-Tag directive") == "opted_out"
    assert failure_class("something new") == "other" and failure_class(None) == ""
    assert set(FAILURE_CLASSES) >= {"http_404", "timeout", "undecodable", "too_small", "other"}


def test_download_counts_failures_resumes_and_is_reproducible(cfg, tmp_path, shared_data):
    photos = real_photos(shared_data)[:6]
    with PhotoServer(photos, slow_seconds=4) as server:
        urls = [server.url("photo", p.name) for p in photos]
        urls += [
            server.url("missing", "gone.jpg"),
            server.url("truncated", photos[0].name),
            server.url("html", "page.jpg"),
            server.url("slow", "late.jpg"),
        ]
        rows = rows_file(tmp_path / "rows.parquet", urls)
        out = tmp_path / "out"
        job = DownloadImagesJob(
            shard="00000",
            rows=rows,
            out=out / "00000.tar",
            table=out / "00000.parquet",
            stats=out / "00000.stats.json",
            work_dir=tmp_path / "work",
        )
        stats = download_images(cfg, job)
        assert stats["requested"] == 10 and stats["downloaded"] == 6
        assert {k: v for k, v in stats["failed"].items() if v} == {"http_404": 1, "undecodable": 2, "timeout": 1}
        assert json.loads((out / "00000.stats.json").read_text()) == stats
        table = read_table(out / "00000.parquet", "downloads").to_pylist()
        assert [r["sample_id"] for r in table] == sorted(r["sample_id"] for r in table)
        ok = [r for r in table if r["status"] == "success"]
        assert len(ok) == 6 and all(min(r["width"], r["height"]) == 128 for r in ok)  # smallest side resized
        samples = list(iter_shard(out / "00000.tar"))
        assert sorted(m["sample_id"] for m, _ in samples) == [f"00000_{i:06d}" for i in range(6)]
        assert all(decode(data) is not None for _, data in samples)
        with tarfile.open(out / "00000.tar") as tar:
            assert {(m.mtime, m.uid, m.uname) for m in tar.getmembers()} == {(0, 0, "")}
        first = (out / "00000.tar").read_bytes()
        # Rerun with the parts left by the first run (as after a kill at the merge): nothing is fetched again.
        before = len(server.requests)
        (out / "00000.tar").unlink()
        download_images(cfg, job)
        assert len(server.requests) == before
        assert (out / "00000.tar").read_bytes() == first
        # Different rows in the same work folder: start over; a shard where nothing downloads stops the run.
        rows_file(rows, [server.url("missing", "a.jpg"), server.url("missing", "b.jpg")])
        with pytest.raises(
            InputError, match=r"shard 00000: none of its 2 images could be downloaded \(failures: http_404 2"
        ):
            download_images(cfg, job)
        assert not (out / "00000.tar").exists()
