"""Cost of the FLAME branches: the multi-task detector against the same-size plain ultralytics
detector, both built in this run (no weights needed).

    python benchmarks/bench_model.py                    # latency of size n at 640 px, table for n/s/m/l
    python benchmarks/bench_model.py --latency n s --runs 20

Prints (1) parameters and GFLOPs at 640 px per size, like the paper's Table 9; (2) CPU latency at
640 px, batch 1, of the fused models over interleaved runs, and the ratio multi-task / plain (goal:
<= 1.15). The verdict uses the fastest run of each: on a shared machine the median measures the
neighbours as much as the model; both are printed. (3) GPU frames per second at batch 1 when CUDA
is available.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vggheads.offline import configure  # noqa: E402

configure()

import torch  # noqa: E402

from vggheads.offline import import_ultralytics  # noqa: E402

import_ultralytics()

from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils.torch_utils import get_flops  # noqa: E402

from vggheads.model.config import ModelConfig  # noqa: E402
from vggheads.model.network import HeadDetectionModel  # noqa: E402

# active shape / expression components per size (paper: L 128/64, M 64/32)
COMPONENTS = {"n": (32, 16), "s": (64, 32), "m": (64, 32), "l": (128, 64)}
PAPER_TABLE9 = {"s": (17_004_954, 22.92, 72.34), "m": (32_378_236, 52.01, 69.38), "l": (50_442_706, 83.51, 60.13)}
GOAL = 1.15


def build(base: str, size: str):
    n_shape, n_expr = COMPONENTS[size]
    plain = DetectionModel(f"{base}{size}.yaml", nc=1, verbose=False)
    multi = HeadDetectionModel(ModelConfig(base=base, size=size, n_shape=n_shape, n_expr=n_expr, imgsz=640))
    return plain.eval(), multi.eval()


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def latency(models: dict, imgsz: int, runs: int, device: str = "cpu") -> dict[str, list[float]]:
    """Interleaved timed forward passes of fused copies (the order alternates every run)."""
    fused = {k: m.fuse(verbose=False).to(device) for k, m in models.items()}
    x = torch.rand(1, 3, imgsz, imgsz, device=device)
    times = {k: [] for k in fused}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        for m in fused.values():  # warm-up
            for _ in range(2):
                m(x)
        for r in range(runs):
            order = list(fused) if r % 2 == 0 else list(reversed(fused))
            for k in order:
                sync()
                t = time.perf_counter()
                fused[k](x)
                sync()
                times[k].append(time.perf_counter() - t)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="yolo11", choices=["yolo11", "yolov8"])
    ap.add_argument("--table", nargs="*", default=["n", "s", "m", "l"], help="sizes for the parameter/GFLOPs table")
    ap.add_argument("--latency", nargs="*", default=["n"], help="sizes to time on the CPU (l takes ~1 s per pass)")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    print(f"== parameters and GFLOPs at {args.imgsz} px ({args.base}; paper Table 9 for YOLO-NAS based VGGHeads)")
    print(
        f"{'size':>4} {'plain params':>13} {'multi params':>13} {'x':>6} {'plain GFLOPs':>13} {'multi GFLOPs':>13} "
        f"{'x':>6} {'paper params':>13} {'paper GFLOPs':>13}"
    )
    for size in args.table:
        plain, multi = build(args.base, size)
        pp, mp = params(plain), params(multi)
        pf, mf = get_flops(plain, args.imgsz), get_flops(multi, args.imgsz)
        paper = PAPER_TABLE9.get(size)
        print(
            f"{size:>4} {pp:>13,} {mp:>13,} {mp / pp:>6.3f} {pf:>13.2f} {mf:>13.2f} {mf / max(pf, 1e-9):>6.3f} "
            f"{(f'{paper[0]:,}' if paper else '-'):>13} {(f'{paper[1]:.2f}' if paper else '-'):>13}"
        )

    print(
        f"\n== CPU latency at {args.imgsz} px, batch 1, fused, {args.runs} interleaved runs "
        f"({torch.get_num_threads()} threads): fastest run (median)"
    )
    for size in args.latency:
        plain, multi = build(args.base, size)
        t = latency({"plain": plain, "multi": multi}, args.imgsz, args.runs)
        p_min, m_min = (1000 * min(t[k]) for k in ("plain", "multi"))
        p_med, m_med = (1000 * statistics.median(t[k]) for k in ("plain", "multi"))
        ratio = m_min / p_min
        verdict = "within" if ratio <= GOAL else "ABOVE"
        print(
            f"{size:>4} plain {p_min:7.1f} ms ({p_med:7.1f})   multi-task {m_min:7.1f} ms ({m_med:7.1f})   "
            f"ratio {ratio:.3f} ({m_med / p_med:.3f}): {verdict} the {GOAL:.2f} goal"
        )

    print("\n== GPU, batch 1")
    if torch.cuda.is_available():
        for size in args.latency:
            plain, multi = build(args.base, size)
            t = latency({"plain": plain, "multi": multi}, args.imgsz, max(args.runs, 50), device="cuda")
            fps = {k: 1.0 / statistics.median(v) for k, v in t.items()}
            print(
                f"{size:>4} plain {fps['plain']:8.1f} FPS   multi-task {fps['multi']:8.1f} FPS   "
                f"({torch.cuda.get_device_name(0)}; paper L: 60.13 FPS on its GPU)"
            )
    else:
        print(
            "no GPU here: FPS not measured. On a CUDA machine run:  python benchmarks/bench_model.py --latency n s m l"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
