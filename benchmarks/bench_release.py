"""What the paper released, measured: importing a release-layout dataset, and the released model's
pipeline on stand-ins, each against a baseline measured in the same run.

    python benchmarks/bench_release.py                 # 20,000-image release in 2 splits, predict at 640 px
    python benchmarks/bench_release.py --images 4000 --skip-predict     # quicker

**Import** (goal: >= 1,000 images/s on 2 cores, peak RSS < 1.5 GB; images referenced, not copied).
A release tree is generated under ``--work`` (JPEG images of 640 x 480 written once and copied, npz
annotations with the paper's 2.17 heads per image, every one of the 400 shape/expression
components non-zero as DAD-3DNet's, 1 % of the ids in ``files.txt``). Measured:

* ``import_split`` on one split in one process, 1 BLAS thread (the per-core rate of the import itself);
* the DAG's way: ``vggheads import-release`` (the whole command, start-up included) on one split,
  then one job per split with both splits at once (``snakemake --cores 2``), wall time for all
  images and the largest job's peak RSS;
* baseline: the straightforward import of the same images (``np.load`` of every npz, PIL for the
  size, every vertex decoded with :class:`~vggheads.geometry.FlameLayer` + ``decode`` for the
  landmarks, pose and boxes; no tables written), on the first ``--baseline-images`` images.

**Predict** (CPU, 640 px, batch 1, fastest of ``--repeats`` interleaved runs, whole pipeline from an
RGB array to heads): this project's model (torch, and its ONNX export) next to its stand-in of the
released contract through TorchScript and ONNX (:mod:`vggheads.release.standin`), same network and size.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def heads_per_image(rng, n: int) -> np.ndarray:
    """1..8 heads, mean about 2.17 (the paper: 2,219,146 heads in 1,022,944 images)."""
    p = np.array([0.42, 0.25, 0.14, 0.08, 0.05, 0.03, 0.02, 0.01])
    return rng.choice(np.arange(1, 9), size=n, p=p / p.sum())


def make_release(root: Path, n_images: int, n_splits: int = 2, seed: int = 0) -> Path:
    """A release tree ``root/large/split_0000k`` of ``n_images`` in ``n_splits`` splits (reused when present)."""
    import io

    import torch
    from PIL import Image

    from vggheads.geometry import angles_to_matrix, matrix_to_rot6d

    done = root / f".done_{n_images}_{n_splits}_{seed}"
    if done.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    jpegs = []
    for k in range(16):  # distinct photos-like JPEGs (smooth + noise), written as copies
        y, x = np.mgrid[0:480, 0:640]
        base = (np.sin(x / (20 + k)) * 60 + np.cos(y / (15 + k)) * 60 + 128)[..., None] + rng.normal(
            0, 12, (480, 640, 3)
        )
        buf = io.BytesIO()
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
    per_split = n_images // n_splits
    for s in range(n_splits):
        d = root / "large" / f"split_{s:05d}"
        (d / "images").mkdir(parents=True)
        (d / "annotations").mkdir(parents=True)
        counts = heads_per_image(rng, per_split)
        removed = []
        for i, n in enumerate(counts):
            image_id = f"{s:02d}{i:07d}"
            (d / "images" / f"{image_id}.jpg").write_bytes(jpegs[i % len(jpegs)])
            xy = rng.uniform(0, 560, (n, 2))
            wh = rng.uniform(30, 120, (n, 2))
            bbox = np.concatenate([xy, wh], 1).astype(np.float32)
            ext = np.rint(np.concatenate([xy - wh / 4, wh * 1.5], 1)).astype(np.int32)
            p = np.zeros((n, 413), np.float32)
            p[:, :300] = rng.normal(0, 1, (n, 300))
            p[:, 300:400] = rng.normal(0, 0.7, (n, 100))
            p[:, 400:403] = rng.normal(0, 0.05, (n, 3))
            R = angles_to_matrix(rng.uniform(-70, 70, n), rng.uniform(-30, 30, n), rng.uniform(-20, 20, n))
            p[:, 403:409] = matrix_to_rot6d(torch.from_numpy(np.asarray(R))).numpy()
            p[:, 409:411] = rng.normal(0, 0.05, (n, 2))
            p[:, 411] = rng.normal(0, 0.05, n)
            p[:, 412] = rng.normal(0.4, 0.1, n)
            np.savez(d / "annotations" / f"{image_id}.npz", bbox=bbox, extended_bbox=ext, **{"3dmm_params": p[:, None]})
            if rng.random() < 0.01:
                removed.append(f"{image_id}.jpg")
        (d / "files.txt").write_text("".join(f"{r}\n" for r in removed))
    done.write_text("")
    return root


def _blas_threads(n: int) -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        os.environ["OPENBLAS_NUM_THREADS"] = str(n)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _import_job(args) -> dict:
    """import_split in a fresh process with 1 BLAS thread (the import alone, no command start-up)."""
    root, split, head_model, out, chunk = args
    _blas_threads(1)  # the import never loads torch; numpy's BLAS gets the job's 1 thread
    from vggheads.release.importer import import_split

    t0, c0 = time.perf_counter(), time.process_time()
    stats = import_split(root, split, head_model, Path(out) / split, Path(out) / "manifest", "train", chunk=chunk)
    return {
        "split": split,
        "seconds": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
        "ids": stats["images"] + sum(stats["dropped"].values()),
        "images": stats["images"],
        "heads": stats["heads"],
        "peak_rss_mb": _peak_rss_mb(),
    }


def _baseline_job(args) -> dict:
    """The straightforward import of the first ``n`` images of a split: np.load, PIL for the size, every
    vertex decoded (FlameLayer + decode) for landmarks, pose and boxes; no tables written."""
    root, split, head_model, n = args
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    _blas_threads(1)
    from vggheads.geometry import FlameLayer, decode
    from vggheads.headmodel import load_head_model
    from vggheads.release.convert import release_to_image

    model = load_head_model(head_model)
    layer = FlameLayer(model)
    head_idx = torch.from_numpy(model.subsets["head"])
    face_idx = torch.from_numpy(model.subsets["face"])
    d = Path(root) / "large" / f"split_{split}"
    ids = sorted(p.stem for p in (d / "annotations").iterdir())[:n]
    t0, c0 = time.perf_counter(), time.process_time()
    heads = 0
    for at in range(0, len(ids), 256):
        params = []
        for image_id in ids[at : at + 256]:
            with np.load(d / "annotations" / f"{image_id}.npz") as z:
                _, ext, p = z["bbox"], z["extended_bbox"], z["3dmm_params"][:, 0]
            with Image.open(d / "images" / f"{image_id}.jpg") as im:
                _ = im.size
            params.append(release_to_image(p, ext))
        p = torch.from_numpy(np.concatenate(params))
        with torch.no_grad():  # every vertex decoded once: landmarks, pose, boxes
            dec = decode(p, layer)
            v = dec.vertices_image[..., :2]
            _ = (v[:, head_idx].amin(1), v[:, head_idx].amax(1), v[:, face_idx].amin(1), v[:, face_idx].amax(1))
        heads += len(p)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
        "images": len(ids),
        "heads": heads,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _cli_jobs(work: Path, root: Path, head_model: Path, splits: list[str], chunk: int) -> dict:
    """``vggheads import-release`` for each split, all at once, as ``snakemake --cores N`` runs the rule
    (1 thread each): wall time and the largest job's peak RSS (the whole CLI process)."""
    import subprocess

    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"]["source"] = "release"
    params["dataset"]["release"].update({"root": str(root), "chunk": chunk})
    params["tracking"]["enabled"] = False
    pfile = work / "params.yaml"
    pfile.write_text(yaml.safe_dump(params))
    out = work / "cli"
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).parent / "vggheads"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "/usr/bin/time",
                "-f",
                "%M %U %S",
                "-o",
                str(work / f"rss_{s}.txt"),
                str(exe),
                "import-release",
                "--params",
                str(pfile),
                "--shard",
                s,
                "--head-model",
                str(head_model),
                "--out-dir",
                str(out / s),
                "--manifest-dir",
                str(out / "manifest"),
                "--threads",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        for s in splits
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(err.decode()[-2000:])
    wall = time.perf_counter() - t0
    measured = [(work / f"rss_{s}.txt").read_text().split()[-3:] for s in splits]  # GNU time: KB, user s, sys s
    rss = max(int(m[0]) for m in measured) / 1024.0
    cpu = sum(float(m[1]) + float(m[2]) for m in measured)
    import json

    stats = [json.loads((out / s / "stats.json").read_text()) for s in splits]
    ids = sum(st["images"] + sum(st["dropped"].values()) for st in stats)
    return {
        "wall": wall,
        "ids": ids,
        "images": sum(st["images"] for st in stats),
        "heads": sum(st["heads"] for st in stats),
        "rss": rss,
        "cpu": cpu,
    }


def bench_import(args, head_model: Path) -> None:
    work = Path(args.work)
    t0 = time.perf_counter()
    root = make_release(work / "release", args.images, 2)
    print(f"release tree: {args.images} images in 2 splits under {root} ({time.perf_counter() - t0:.0f} s to make)")
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        base = pool.map(_baseline_job, [(root, "00000", head_model, args.baseline_images)])[0]
    base_rate, base_cpu = base["images"] / base["seconds"], base["images"] / base["cpu"]
    print(
        f"baseline (np.load, PIL, torch decoding of every vertex), 1 process: {base['images']} images, "
        f"{base['heads']} heads in {base['seconds']:.1f} s = {base_rate:.0f} images/s; "
        f"{base_cpu:.0f} images per CPU-second"
    )
    with ctx.Pool(1) as pool:
        one = pool.map(_import_job, [(root, "00000", head_model, work / "inproc", args.chunk)])[0]
    one_rate, one_cpu = one["ids"] / one["seconds"], one["ids"] / one["cpu"]
    print(
        f"import_split, 1 process, 1 thread: {one['ids']} ids ({one['images']} imported, {one['heads']} heads) in "
        f"{one['seconds']:.1f} s = {one_rate:.0f} images/s; {one_cpu:.0f} images per CPU-second "
        f"({one_cpu / base_cpu:.1f}x the baseline's)"
    )
    job = _cli_jobs(work, root, head_model, ["00000"], args.chunk)
    print(
        f"`vggheads import-release`, one split, the whole command: {job['ids']} ids in {job['wall']:.1f} s = "
        f"{job['ids'] / job['wall']:.0f} images/s; {job['ids'] / job['cpu']:.0f} images per CPU-second; "
        f"peak RSS {job['rss']:.0f} MB"
    )
    both = _cli_jobs(work, root, head_model, ["00000", "00001"], args.chunk)
    rate, per_cpu = both["ids"] / both["wall"], both["ids"] / both["cpu"]
    print(
        f"`vggheads import-release`, one job per split, 2 at once (snakemake --cores 2): {both['ids']} ids, "
        f"{both['heads']} heads in {both['wall']:.1f} s wall = {rate:.0f} images/s measured; "
        f"{per_cpu:.0f} images per CPU-second, so {2 * per_cpu:.0f} images/s on 2 free cores "
        f"({per_cpu / base_cpu:.1f}x the baseline per CPU-second); largest job's peak RSS {both['rss']:.0f} MB"
    )
    print(
        f"goal >= 1000 images/s on 2 cores: {'met' if 2 * per_cpu >= 1000 else 'NOT met'} on CPU time "
        f"({2 * per_cpu:.0f}), {'met' if rate >= 1000 else 'not met'} in wall time on this shared machine ({rate:.0f}); "
        f"peak RSS < 1.5 GB: {'met' if both['rss'] < 1536 else 'NOT met'} ({both['rss']:.0f} MB)"
    )
    print(f"load average after the run: {os.getloadavg()[0]:.1f} (other processes share these cores)")


def bench_predict(args, head_model: Path) -> None:
    import torch

    from vggheads.model.config import ModelConfig
    from vggheads.model.checkpoint import export_onnx, save_model
    from vggheads.model.inference import HeadDetector
    from vggheads.model.network import HeadDetectionModel
    from vggheads.release.official import OfficialDetector
    from vggheads.release.standin import build_standin

    torch.set_num_threads(args.threads)
    work = Path(args.work) / f"predict_{args.size}"
    torch.manual_seed(0)
    n_shape, n_expr = (128, 64) if args.size == "l" else (64, 32) if args.size in ("s", "m") else (32, 16)
    model = HeadDetectionModel(
        ModelConfig(size=args.size, n_shape=n_shape, n_expr=n_expr, imgsz=640, head_model=str(head_model))
    ).eval()
    save_model(model, work / "model" / "model.safetensors")
    export_onnx(model, work / "model" / "model.onnx")
    build_standin(model, work / "vgg_heads_l.trcd")
    build_standin(model, work / "vgg_heads_l.onnx")
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)  # a 720p photo
    systems = {
        "this project's model, torch": HeadDetector(work / "model", conf=0.5, vertices=False),
        "this project's model, its ONNX": HeadDetector(work / "model", onnx=True, conf=0.5, vertices=False),
        "released contract, TorchScript stand-in": OfficialDetector(
            work / "vgg_heads_l.trcd", head_model, conf=0.5, vertices=False
        ),
        "released contract, ONNX stand-in": OfficialDetector(
            work / "vgg_heads_l.onnx", head_model, conf=0.5, vertices=False
        ),
    }
    times = {k: [] for k in systems}
    for det in systems.values():
        det(image)  # warm-up
    for _ in range(args.repeats):
        for name, det in systems.items():
            t0 = time.perf_counter()
            det(image)
            times[name].append(time.perf_counter() - t0)
    base = min(times["this project's model, torch"])
    print(
        f"predict, YOLO11{args.size} at 640 px, 1280x720 RGB in, batch 1, {args.threads} threads, fastest of "
        f"{args.repeats} interleaved runs (median in brackets):"
    )
    for name, ts in times.items():
        print(f"  {name:<42} {min(ts) * 1e3:7.1f} ms ({np.median(ts) * 1e3:7.1f})  {min(ts) / base:.2f}x")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000, help="images in the generated release (2 splits)")
    ap.add_argument("--baseline-images", type=int, default=1000, help="images the baseline imports")
    ap.add_argument("--chunk", type=int, default=2048, help="dataset.release.chunk")
    ap.add_argument("--work", default="/tmp/vggheads-bench-release", help="scratch folder (kept between runs)")
    ap.add_argument("--head-model", default=None, help="head model (default: build the project's into --work)")
    ap.add_argument("--size", default="n", choices=["n", "s", "m", "l"], help="network size for predict")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for predict")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--skip-predict", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from vggheads.offline import configure

    configure()
    head_model = Path(args.head_model) if args.head_model else Path(args.work) / "head_model.npz"
    if not head_model.exists():
        from vggheads.headmodel import build_head_model, save_head_model

        save_head_model(build_head_model(seed=0), head_model)
    if not args.skip_import:
        bench_import(args, head_model)
    if not args.skip_predict:
        bench_predict(args, head_model)


if __name__ == "__main__":
    main()
