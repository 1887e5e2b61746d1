"""One pass over every CUDA path of the project, printing each figure (run by ``benchmarks/gpu_check.sh``).

Sections (each prints its figures, or why it was skipped, and never stops the others):

1. ``device``: torch, CUDA, the GPU's name and memory.
2. ``rasteriser``: the GL renderer string of the headless EGL context (the NVIDIA driver, not
   llvmpipe, is what a GPU machine should report).
3. ``train``: a few hundred optimiser steps of the multi-task model with AMP on procedural images
   (steps per second, the first and last losses, and the held-out AP50/NME68 it reaches).
4. ``predict``: model latency at batch 1, 640 px, for sizes n and s, next to the plain ultralytics
   detector of the same size (the FLAME branches' cost on a GPU), as frames per second.
5. ``tiny-sdxl`` / ``sdxl``: the tiny random-weight backend on CUDA, and the full-size SDXL + openpose
   adapter at 1024 px with the paper's settings for a few steps (``bench_sdxl.py``).
6. ``head-mesh``: the head-mesh conditioning at full size (``gpu_check_headmesh.py``).
7. ``sdxl-compile``: ``torch.compile`` of the full-size UNet (minutes of compiling: last, so that a run
   stopped early still has every other figure).

The JSON file is rewritten after every section; a benchmark script past its time limit is killed and
what it printed so far is kept.

Goal: under 8 minutes on one H100/H200 class GPU. Without CUDA it says so and exits 0;
``--cpu-smoke`` runs the train and predict sections on the CPU with tiny settings, so the script
itself is checked where no GPU is (tests/test_gpu_check.py). Figures go to stdout and, with
``--json``, to a file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def section(name: str, results: dict, fn, json_path: Path | None = None) -> None:
    """Run one section; its figures (or its error) are printed and, when ``json_path`` is given, the JSON
    is rewritten at once, so a run stopped later still leaves every finished section's figures."""
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # one failing path must not hide the others
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out["seconds"] = round(time.perf_counter() - start, 1)
    results[name] = out
    for key, value in out.items():
        print(f"   {key}: {value}", flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=1))


def device_info() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "devices": torch.cuda.device_count(),
    }


def rasteriser() -> dict:
    from vggheads.render.raster import Rasterizer

    info = Rasterizer().ctx.info
    return {"GL_RENDERER": info.get("GL_RENDERER"), "GL_VERSION": info.get("GL_VERSION")}


def train(work: Path, steps: int, device: str = "0", n_train: int = 128, imgsz: int = 256) -> dict:
    import numpy as np
    import torch

    from vggheads.core.metrics import NME68_KEY
    from vggheads.model.config import ModelConfig
    from vggheads.model.dataset import HeadDataset
    from vggheads.model.loss import LossSettings
    from vggheads.model.toydata import toy_dataset
    from vggheads.model.trainer import HeadTrainer
    from vggheads.model.validator import evaluate

    cuda = device != "cpu"
    head, images, heads = toy_dataset(work / "toy", n_train=n_train, n_val=max(4, n_train // 4), size=imgsz, seed=1)
    arch = ModelConfig(size="n", n_shape=32, n_expr=16, imgsz=imgsz, head_model=str(head))
    batch = min(16, n_train)
    per_epoch = n_train // batch
    epochs = max(1, steps // per_epoch)
    trainer = HeadTrainer(
        arch,
        images,
        heads,
        LossSettings(classification="bce", landmarks=10.0),
        overrides={
            "epochs": epochs,
            "batch": batch,
            "nbs": batch,
            "imgsz": imgsz,
            "device": device,
            "amp": cuda,
            "workers": 8 if cuda else 0,  # in-process loading starved the H200 (docs/gpu.md)
            "plots": False,
            "val": False,
            "optimizer": "AdamW",
            "lr0": 0.002,
            "cos_lr": True,
            "seed": 0,
            "project": str(work),
            "name": "train",
            "exist_ok": True,
            "verbose": False,
        },
        bn_images=64,
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    rows = [line.split(",") for line in (work / "train" / "results.csv").read_text().splitlines()]
    head_row, first, last = rows[0], rows[1], rows[-1]
    loss_cols = [i for i, name in enumerate(head_row) if name.strip().startswith("train/")]
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(trainer.last)
    metrics = evaluate(
        model.float(), HeadDataset(images, heads, "val", imgsz=imgsz), device="cuda:0" if cuda else "cpu"
    )
    return {
        "steps": epochs * per_epoch,
        "steps_per_s": round(epochs * per_epoch / seconds, 2),
        "amp": bool(trainer.amp),
        "first_epoch_loss": round(sum(float(first[i]) for i in loss_cols), 3),
        "last_epoch_loss": round(sum(float(last[i]) for i in loss_cols), 3),
        "heldout_ap50": round(metrics["ap50"], 3),
        "heldout_nme68_pct": None if metrics[NME68_KEY] != metrics[NME68_KEY] else round(metrics[NME68_KEY], 4),
        "torch_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "numpy": np.__version__,
    }


def predict(sizes: list[str], device: str = "cuda", imgsz: int = 640, runs: int = 50) -> dict:
    import torch

    from vggheads.model.config import ModelConfig
    from vggheads.model.network import HeadDetectionModel
    from vggheads.offline import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        from vggheads.headmodel import build_head_model, save_head_model

        head = Path(tmp) / "head.npz"
        save_head_model(build_head_model(seed=0), head)
        sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
        x = torch.rand(1, 3, imgsz, imgsz, device=device)
        for size in sizes:
            for name, model in (
                (
                    "multitask",
                    HeadDetectionModel(
                        ModelConfig(size=size, n_shape=128, n_expr=64, imgsz=imgsz, head_model=str(head))
                    ),
                ),
                ("plain", DetectionModel({**yaml_model_load(f"yolo11{size}.yaml"), "nc": 1}, verbose=False)),
            ):
                model = model.to(device).eval()
                with torch.inference_mode():
                    for _ in range(3):
                        model(x)
                    sync()
                    times = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        model(x)
                        sync()
                        times.append(time.perf_counter() - t0)
                ms = sorted(times)[len(times) // 2] * 1000
                out[f"{size}_{name}_ms"] = round(ms, 2)
                out[f"{size}_{name}_fps"] = round(1000 / ms, 1)
            out[f"{size}_ratio"] = round(out[f"{size}_multitask_ms"] / out[f"{size}_plain_ms"], 3)
    return out


def script(args: list[str], json_path: Path, timeout: int) -> dict:
    """Run a benchmark script; past ``timeout`` it is killed and what it printed so far is kept."""
    try:
        proc = subprocess.run(
            [sys.executable, *args, "--json", str(json_path)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return {"error": f"killed after {timeout} s", "printed": out.strip().splitlines()[-12:]}
    if proc.returncode:
        return {
            "error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-3:]}",
            "printed": proc.stdout.strip().splitlines()[-12:],
        }
    return json.loads(json_path.read_text()) if json_path.exists() else {"output": proc.stdout[-500:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--train-steps", type=int, default=320)
    ap.add_argument("--sdxl-steps", type=int, default=4, help="denoising steps of the full-size SDXL check")
    ap.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="no GPU: run the train and predict sections on the CPU, tiny (checks the script itself)",
    )
    args = ap.parse_args(argv)
    import torch

    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="vggheads-gpu-check-"))
    if args.cpu_smoke:
        section("train", results, lambda: train(work, 4, device="cpu", n_train=8, imgsz=96))
        section("predict", results, lambda: predict(["n"], device="cpu", imgsz=128, runs=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return 1 if any("error" in r for r in results.values()) else 0
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check here (run this on a GPU machine)")
        return 0
    out = args.json
    section("device", results, device_info, out)
    section("rasteriser", results, rasteriser, out)
    section("train", results, lambda: train(work, args.train_steps), out)
    section("predict", results, lambda: predict(["n", "s"]), out)
    section(
        "tiny-sdxl",
        results,
        lambda: script(
            [
                str(HERE / "bench_sdxl.py"),
                "--arch",
                "tiny",
                "--device",
                "cuda",
                "--size",
                "256",
                "--steps",
                "4",
                "--images",
                "4",
                "--batch",
                "2",
            ],
            work / "tiny_sdxl.json",
            120,
        ),
        out,
    )

    def full_sdxl(variants: list[str], name: str):
        """bench_sdxl.py --full on ``variants`` at the check's size (4 images, batch 2)."""
        args_ = ["--full", "--steps", str(args.sdxl_steps), "--images", "4", "--batch", "2"]
        return lambda: script(
            [str(HERE / "bench_sdxl.py"), *args_, "--variants", ",".join(variants)], work / f"{name}.json", 240
        )

    from bench_sdxl import VARIANTS  # this script's folder is on sys.path

    # torch.compile of the 2.6 B UNet takes minutes: it runs last, in its own section, so the rest is in first
    section("sdxl", results, full_sdxl([v.name for v in VARIANTS if not v.compile], "sdxl"), out)
    section(
        "head-mesh",
        results,
        lambda: script(
            [str(HERE / "gpu_check_headmesh.py"), "--steps", str(args.sdxl_steps), "--images", "4", "--batch", "2"],
            work / "headmesh.json",
            240,
        ),
        out,
    )
    compiled = ["naive", "batched-cl-fp16vae", "batched-cl-fp16vae-compile"]
    section("sdxl-compile", results, full_sdxl(compiled, "sdxl_compile"), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
