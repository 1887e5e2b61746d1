"""End to end, offline: the paper's front end in the DAG on real photos served on 127.0.0.1.

LAION-format rows point at real photos from ../shared/data (AFLW2000-3D faces, WIDER FACE crowds)
served over HTTP, plus a 404, a truncated JPEG and an HTML page named .jpg. `snakemake` runs
download_images (img2dataset) -> caption_images (the tiny random-weight BLIP-2 built by the DAG)
-> the name check -> extract_poses (YOLO-pose built from its yaml) -> the procedural render: the
the render outputs. The injected failures are counted per shard, not fatal.
"""

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import SHARED_DATA, copy_project, merge, tiny_params, tool_env
from photo_server import PhotoServer, real_photos
from vggheads.captions.blip2 import TINY_WORDS
from vggheads.schemas import read_table

pytestmark = pytest.mark.slow

ALT_TEXTS = [
    "a woman smiling at the camera",
    "portrait of an old man with glasses",
    "a young girl laughing outdoors",
    "close-up of a man looking to the side",
    "a woman with curly hair in a park",
    "a boy posing for a school photo",
    "an elderly woman wearing a scarf",
    "a bearded man in a studio",
    "a crowd of people at a parade",
    "a group of friends walking in the city",
    "a man waving from a balcony",
    "two women talking on a bench",
    "a teenager reading on a train",
]


def run(cmd, cwd, timeout=1500):
    res = subprocess.run(
        cmd, cwd=cwd, env=tool_env({"MLFLOW_TRACKING_URI": ""}), capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def front_end_run(tmp_path_factory):
    shared = SHARED_DATA
    if not shared.exists():
        pytest.skip(f"real data samples not found at {shared}")
    photos = real_photos(shared)
    assert len(photos) >= 8, f"expected the real benchmark photos under {shared}/benchmarks"
    project = tmp_path_factory.mktemp("front_end")
    from vggheads.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    (project / "models").mkdir()
    YOLO("yolo11n-pose.yaml").save(str(project / "models" / "pose.pt"))  # random weights, built from its yaml
    with PhotoServer(photos) as server:
        urls = [server.url("photo", p.name) for p in photos]
        injected = {
            "404": server.url("missing", "gone.jpg"),
            "truncated": server.url("truncated", photos[0].name),
            "not_an_image": server.url("html", "page.jpg"),
        }
        urls += list(injected.values())
        rows = {
            "URL": urls,
            "TEXT": [ALT_TEXTS[i % len(ALT_TEXTS)] + f" ({i})" for i in range(len(urls))],
            "WIDTH": [640] * len(urls),
            "HEIGHT": [480] * len(urls),
        }
        pq.write_table(pa.table(rows), project / "laion_rows.parquet")
        params = merge(
            tiny_params(),
            {
                "dataset": {"samples_per_shard": None},
                "captions": {
                    "source": "blip2",
                    "sources": ["laion_rows.parquet"],
                    "dedup_threshold": 1.0,
                    "blip2": {"model": "tiny", "batch_size": 4},
                    "download": {"image_size": 256, "timeout": 5, "retries": 0, "threads": 4},
                },
                "poses": {
                    "backend": "ultralytics",
                    "ultralytics": {
                        "weights": "models/pose.pt",
                        "images": "downloaded",
                        "conf": 0.0,
                        "imgsz": 128,
                        "max_det": 2,
                    },
                },
            },
        )
        copy_project(project, params)
        out = run(["snakemake", "--cores", "2", "data/render/00000.parquet", "data/render/00001.parquet"], project)
        requests = list(server.requests)
    return project, out, urls, injected, requests


def test_every_photo_was_requested_from_the_local_server(front_end_run):
    _, _, urls, _, requests = front_end_run
    paths = {u.split("127.0.0.1:", 1)[1].split("/", 1)[1] for u in urls}
    assert {r.lstrip("/") for r in requests} >= paths


def test_injected_failures_are_counted_not_fatal(front_end_run):
    project, _, urls, _, _ = front_end_run
    stats = [json.loads((project / f"data/images/{s}.stats.json").read_text()) for s in ("00000", "00001")]
    assert sum(s["requested"] for s in stats) == len(urls)
    failed = {k: sum(s["failed"][k] for s in stats) for k in stats[0]["failed"]}
    assert failed["http_404"] == 1 and failed["undecodable"] == 2, failed  # truncated JPEG + HTML page
    assert sum(failed.values()) == 3
    assert sum(s["downloaded"] for s in stats) == len(urls) - 3
    table = pa.concat_tables(
        [read_table(project / f"data/images/{s}.parquet", "downloads") for s in ("00000", "00001")]
    )
    by_url = {r["url"]: r for r in table.to_pylist()}
    assert all(by_url[u]["status"] == "success" and by_url[u]["width"] and by_url[u]["key"] for u in urls[:-3])


def test_downloaded_photos_are_resized_webdataset_shards(front_end_run):
    import tarfile

    from vggheads.captions.download import decode, iter_shard

    project = front_end_run[0]
    for shard in ("00000", "00001"):
        samples = list(iter_shard(project / f"data/images/{shard}.tar"))
        assert samples
        for meta, data in samples:
            image = decode(data)
            assert image is not None and min(image.size) == 256  # smallest side resized as configured
            assert meta["sample_id"].startswith(shard)
        with tarfile.open(project / f"data/images/{shard}.tar") as tar:
            assert {m.mtime for m in tar.getmembers()} == {0}  # no wall-clock time in the artefact


def test_tiny_blip2_captions_replace_the_alt_texts(front_end_run):
    project = front_end_run[0]
    for shard in ("00000", "00001"):
        rows = read_table(project / f"data/captions/{shard}.rows.parquet", "captions").to_pylist()
        caps = read_table(project / f"data/captions/{shard}.parquet", "captions").to_pylist()
        stats = json.loads((project / f"data/captions/{shard}.blip2.stats.json").read_text())
        assert caps and stats["kept"] == len(caps)
        assert stats["rows"] == len(rows) and stats["dropped"]["no_image"] >= 0
        assert sum(stats["dropped"].values()) + stats["kept"] == stats["rows"]
        alt = {r["sample_id"]: r["caption"] for r in rows}
        for c in caps:
            assert c["caption"] != alt[c["sample_id"]]
            assert set(c["caption"].split()) <= set(TINY_WORDS)  # the tiny model's words
            assert c["prompt"].startswith(c["caption"].split()[0]) or c["prompt"] != c["caption"]
    dropped = sum(
        json.loads((project / f"data/captions/{s}.blip2.stats.json").read_text())["dropped"]["no_image"]
        for s in ("00000", "00001")
    )
    assert dropped == 3  # the three failed downloads have no photo to caption


def test_poses_from_photos_feed_the_render(front_end_run):
    project = front_end_run[0]
    for shard in ("00000", "00001"):
        poses = read_table(project / f"data/poses/{shard}.parquet", "poses").to_pandas()
        stats = json.loads((project / f"data/poses/{shard}.stats.json").read_text())
        assert (poses.backend == "ultralytics").all() and len(poses) == stats["persons"]
        assert (
            stats["samples"] + stats["dropped"]["no_person"] + stats["dropped"]["missing_or_corrupt_image"]
            == stats["captions"]
        )
        assert (poses.height == 128).all() | (poses.width == 128).all()  # short side = imgsz
        render = read_table(project / f"data/render/{shard}.parquet", "render")
        assert render.num_rows == stats["samples"] > 0
        assert len(list((project / f"data/render/{shard}").iterdir())) >= render.num_rows
