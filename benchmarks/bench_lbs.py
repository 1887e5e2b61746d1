"""Batched LBS + projection: heads per second, ours vs a per-head loop and vs smplx.lbs batched.

    .venv/bin/python benchmarks/bench_lbs.py [--model data/headmodel/head_model.npz] [--batch 64]

Every method turns 413-value parameter vectors into image-space vertices (the paper's mesh step:
LBS with only the jaw posed, +0.05 on z, rotation from 6D, scale and translation). Ratios are
measured in the same run, on the same model, with the same number of threads. The goal (issue 3):
>= 15x the loop, >= 1.5x smplx batched, >= 8,000 heads/s with 128 + 64 active components.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def heads_per_second(fn, batch: int, min_seconds: float, repeats: int = 5) -> tuple[float, float]:
    """(wall-clock, CPU-time) heads per second of ``fn``: medians over ``repeats`` runs of at least ``min_seconds``.

    The CPU-time rate (heads per second of this process's CPU time, all threads) is the steadier
    figure on a machine shared with other jobs.
    """
    fn()
    fn()  # warm up
    walls, cpus = [], []
    for _ in range(repeats):
        n, start, cpu = 0, time.perf_counter(), time.process_time()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        walls.append(n * batch / elapsed)
        cpus.append(n * batch / max(time.process_time() - cpu, 1e-9))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    from smplx.lbs import lbs as smplx_lbs

    from vggheads.geometry import FlameLayer, project, rot6d_to_matrix, split_params
    from vggheads.headmodel import build_head_model, load_head_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        type=Path,
        default=Path("data/headmodel/head_model.npz"),
        help="head model (.npz or FLAME .pkl); built in memory when the file is missing",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, here the cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_head_model(args.model) if args.model.exists() else build_head_model(0)
    B = args.batch
    V = model.n_vertices
    print(
        f"model: {model.name}, {V} vertices; batch {B}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    gen = torch.Generator().manual_seed(0)
    params = torch.randn(B, 413, generator=gen)
    params[:, 400:403] *= 0.1
    params[:, 412] = 300.0
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    offset = torch.tensor([0.0, 0.0, 0.05])
    parents = torch.from_numpy(model.parents)

    rows = []
    for n_shape, n_expr in ((300, 100), (128, 64)):
        active = np.r_[0:n_shape, 300 : 300 + n_expr]
        layer = FlameLayer(model, n_shape=n_shape, n_expr=n_expr)
        smplx_consts = (
            t(model.v_template),
            t(model.shapedirs[:, :, active]),
            t(model.posedirs).reshape(V * 3, 36).T.contiguous(),
            t(model.J_regressor),
            parents,
            t(model.weights),
        )

        def ours(p):
            q = split_params(p)
            verts = layer(q.shape, q.expression, q.jaw)
            return project(verts, rot6d_to_matrix(q.rot6d), q.translation, q.scale)

        def smplx_way(p):
            q = split_params(p)
            betas = torch.cat([q.shape[:, :n_shape], q.expression[:, :n_expr]], dim=1)
            pose = torch.zeros(p.shape[0], 15)
            pose[:, 6:9] = q.jaw  # [0 global, 0 neck, jaw, 0 eyes]
            verts, _ = smplx_lbs(betas, pose, *smplx_consts)
            return project(verts + offset, rot6d_to_matrix(q.rot6d), q.translation, q.scale)

        with torch.inference_mode():
            err = (ours(params) - smplx_way(params)).abs().max().item()
            one = [params[i : i + 1] for i in range(B)]
            measured = {
                "ours batched": heads_per_second(lambda: ours(params), B, args.seconds),
                "smplx.lbs batched": heads_per_second(lambda: smplx_way(params), B, args.seconds),
                "ours per-head loop": heads_per_second(lambda: [ours(p) for p in one], B, args.seconds, repeats=3),
                "smplx.lbs per-head loop": heads_per_second(
                    lambda: [smplx_way(p) for p in one], B, args.seconds, repeats=3
                ),
            }
        rows.append((f"{n_shape}+{n_expr}", measured, err))

    print()
    print(f"{'components':<11} {'method':<24} {'heads/s':>9} {'x faster':>9} {'heads/CPU-s':>12} {'x faster':>9}")
    for label, measured, err in rows:
        ours_wall, ours_cpu = measured["ours batched"]
        for name, (wall, cpu) in measured.items():
            ratios = ("", "") if name == "ours batched" else (f"{ours_wall / wall:.1f}x", f"{ours_cpu / cpu:.1f}x")
            print(f"{label:<11} {name:<24} {wall:>9,.0f} {ratios[0]:>9} {cpu:>12,.0f} {ratios[1]:>9}")
        print(f"{label:<11} max |ours - smplx| = {err:.2e} px (scale 300)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    full = {k: v[0] for k, v in rows[0][1].items()}
    small = {k: v[0] for k, v in rows[1][1].items()}
    checks = [
        (">= 15x the smplx per-head loop (128+64)", small["ours batched"] / small["smplx.lbs per-head loop"] >= 15),
        (">= 1.5x smplx batched (128+64)", small["ours batched"] / small["smplx.lbs batched"] >= 1.5),
        (">= 1.5x smplx batched (300+100)", full["ours batched"] / full["smplx.lbs batched"] >= 1.5),
        (">= 8,000 heads/s with 128+64 active", small["ours batched"] >= 8000),
    ]
    for text, ok in checks:
        print(f"goal {text} (wall clock): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
