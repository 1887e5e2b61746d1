"""Head-mesh conditioning at full size, random weights: seconds per image next to the adapter-only mode.

``python benchmarks/gpu_check_headmesh.py`` (a section of ``benchmarks/gpu_check.sh``) builds the
full-size SDXL (UNet 2.6 B, both text encoders, VAE), the openpose T2I-Adapter and three full-size
ControlNets (openpose, PNCC, depth: the architecture of ``okupyn/head-mesh-controlnet-xl`` and
``diffusers/controlnet-depth-sdxl-1.0``) from their configs with random weights (the real compute,
nothing downloaded), on one CUDA GPU in float16, sharing one UNet, VAE and text encoders. Each
mode renders the same samples through the project's own code (``vggheads.render.sdxl.generate``;
the procedural scene and its PNCC/depth images by ``vggheads.render.scene_conditions``):

  adapter                   the paper's: openpose T2I-Adapter (the baseline of the ratios)
  head-mesh                 PNCC + depth ControlNets (diffusers' multi-ControlNet)
  pose+head-mesh (adapter)  the adapter + PNCC + depth ControlNets (the adapter hooked into the UNet)
  pose+head-mesh (controlnet)  openpose + PNCC + depth ControlNets

and prints seconds per image (SDXL; and the scene: head placement, raster, truth, condition images,
on the CPU or the GPU's EGL) and the ratio to the adapter-only mode. Without CUDA it prints that it
was skipped and exits 0; ``--arch tiny --device cpu`` checks the script itself in seconds (its
timings mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

MODES = [  # name, conditioning, head_mesh.pose
    ("adapter", "adapter", None),
    ("head-mesh", "head-mesh", None),
    ("pose+head-mesh (adapter)", "pose+head-mesh", "adapter"),
    ("pose+head-mesh (controlnet)", "pose+head-mesh", "controlnet"),
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="image side in pixels (default 1024)")
    p.add_argument("--steps", type=int, default=40, help="denoising steps (default 40, the paper's)")
    p.add_argument("--images", type=int, default=8, help="images per mode (default 8)")
    p.add_argument("--batch", type=int, default=4, help="images per pipeline call (default 4)")
    p.add_argument("--arch", choices=["full", "tiny"], default="full")
    p.add_argument("--device", default=None, help="cuda, cuda:N (default cuda); cpu only with --arch tiny")
    p.add_argument(
        "--head-model",
        type=Path,
        default=None,
        help="head-model .npz (default data/headmodel/head_model.npz, else built in memory)",
    )
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return p.parse_args(argv)


def make_samples(workdir: Path, n: int, size: int):
    """Samples with procedural skeletons (1-4 persons) and their OpenPose images."""
    import numpy as np
    from PIL import Image

    from vggheads.poses.openpose import draw_openpose
    from vggheads.poses.procedural import sample_scene
    from vggheads.render.sdxl import Sample

    samples = []
    for i in range(n):
        persons = sample_scene(1 + i % 4, size, size, np.random.default_rng(i))
        path = workdir / f"pose_{i:03d}.png"
        Image.fromarray(
            draw_openpose([p.keypoints for p in persons], size, size, 0.3, max(1, round(4 * size / 512)))
        ).save(path)
        samples.append(
            Sample(
                f"bench_{i:03d}",
                f"a photo of {1 + i % 4} people at a street festival, ultra highres",
                "worst quality, low quality, sketch, bad anatomy, bad body, bad face, nsfw, nudity, violence",
                1000 + i,
                path,
                size,
                size,
                canvas=(size, size),
                persons=[(k, p.keypoints) for k, p in enumerate(persons)],
            )
        )
    return samples


def build_pipelines(comps: dict, device, dtype, scheduler: str) -> dict:
    """One pipeline per mode over the same UNet, VAE and text encoders."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        StableDiffusionXLAdapterPipeline,
        StableDiffusionXLControlNetPipeline,
    )

    from vggheads.render.sdxl_pipeline import SCHEDULERS, AdapterInjector

    base = {k: comps[k] for k in ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")}
    sched = DPMSolverMultistepScheduler.from_config(comps["scheduler"].config, **SCHEDULERS[scheduler])
    nets = {"pose": comps["controlnet"], "pncc": comps["controlnet_pncc"], "depth": comps["controlnet_depth"]}
    import torch

    for m in [comps["adapter"], *nets.values(), *base.values()]:
        if isinstance(m, torch.nn.Module):
            m.to(device=device, dtype=dtype)
    pipes = {
        "adapter": StableDiffusionXLAdapterPipeline(**base, scheduler=sched, adapter=comps["adapter"]),
        "head-mesh": StableDiffusionXLControlNetPipeline(
            **base, scheduler=sched, controlnet=[nets["pncc"], nets["depth"]]
        ),
        "pose+head-mesh (adapter)": StableDiffusionXLControlNetPipeline(
            **base, scheduler=sched, controlnet=[nets["pncc"], nets["depth"]]
        ),
        "pose+head-mesh (controlnet)": StableDiffusionXLControlNetPipeline(
            **base, scheduler=sched, controlnet=[nets["pose"], nets["pncc"], nets["depth"]]
        ),
    }
    injector = AdapterInjector(pipes["pose+head-mesh (adapter)"], comps["adapter"])
    for p in pipes.values():
        p.set_progress_bar_config(disable=True)
    return pipes, injector


def main(argv=None) -> int:
    args = parse_args(argv)
    from vggheads.offline import configure

    configure()
    import torch

    device = torch.device(args.device or "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check_headmesh: skipped: no CUDA device (torch.cuda.is_available() is False). "
            "`--arch tiny --device cpu` checks the script."
        )
        return 0
    if device.type != "cuda" and args.arch == "full":
        print(
            "gpu_check_headmesh: the full-size check needs a CUDA device; use --arch tiny to check the script",
            file=sys.stderr,
        )
        return 2
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from vggheads.config import REPO_ROOT, load_params
    from vggheads.headmodel import build_head_model, load_head_model
    from vggheads.render.procedural import DEFAULTS
    from vggheads.render.scene_conditions import SceneConditioner
    from vggheads.render.sdxl import generate
    from vggheads.render.sdxl_pipeline import SdxlSettings, _quiet_multicontrolnet_warning
    from vggheads.render.sdxl_arch import build_components, count_parameters

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    _quiet_multicontrolnet_warning()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # random weights drift into denormals, which are slow on CPUs
    params = load_params(REPO_ROOT / "params.yaml")
    hm_path = args.head_model or REPO_ROOT / "data/headmodel/head_model.npz"
    head_model = load_head_model(hm_path) if Path(hm_path).is_file() else build_head_model(seed=0)
    scener = SceneConditioner(
        head_model, {**DEFAULTS, **params["render"]["procedural"]}, params["poses"]["min_confidence"]
    )
    t0 = time.perf_counter()
    comps = build_components(
        args.arch, seed=0, conditioning=("adapter", "controlnet", "pncc", "depth"), device=str(device)
    )
    counts = count_parameters(comps)
    pipes, injector = build_pipelines(comps, device, dtype, params["render"]["sdxl"]["scheduler"])
    build_s = time.perf_counter() - t0
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_headmesh_"))
    samples = make_samples(workdir, args.images, args.size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"head-mesh conditioning, {args.arch} SDXL with random weights ("
        + ", ".join(f"{k} {v / 1e6:.0f} M" for k, v in counts.items())
        + f"; built in {build_s:.0f} s)"
    )
    print(
        f"device: {name}; {args.size}x{args.size} px, {args.steps} steps, batch {args.batch}, "
        f"{args.images} images per mode, {str(dtype).removeprefix('torch.')}; scenes rasterised by {scener.gl_renderer}"
    )

    def settings_for(conditioning: str, pose: str | None):
        p = json.loads(json.dumps(params))
        p["render"]["sdxl"]["conditioning"] = conditioning
        if pose:
            p["render"]["sdxl"]["head_mesh"]["pose"] = pose
        return dataclasses.replace(SdxlSettings.from_params(p, "sdxl"), steps=args.steps)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    results, baseline = [], None
    print(
        f"{'mode':30s} {'ControlNets':>11s} {'SDXL s/image':>12s} {'scene s/image':>13s} {'vs adapter':>10s}"
        + (f" {'peak GiB':>8s}" if device.type == "cuda" else "")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: NaN pixels in the PIL cast
        for mode, conditioning, pose in MODES:
            settings = settings_for(conditioning, pose)
            pipe = pipes[mode]
            scene_s = 0.0
            if settings.head_mesh:
                t0 = time.perf_counter()
                for s in samples:
                    s.scene = scener(s.persons, s.canvas, (s.width, s.height), s.seed, settings.maps)
                scene_s = (time.perf_counter() - t0) / len(samples)
            batches = [samples[i : i + args.batch] for i in range(0, len(samples), args.batch)]
            generate(pipe, settings, batches[0], steps=2)  # warm-up: kernels, autotuning
            sync()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            for b in batches:
                generate(pipe, settings, b)
            sync()
            sdxl_s = (time.perf_counter() - t0) / len(samples)
            baseline = baseline or sdxl_s
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            r = {
                "mode": mode,
                "controlnets": len(settings.controlnets),
                "sdxl_s_per_image": sdxl_s,
                "scene_s_per_image": scene_s,
                "ratio_vs_adapter": sdxl_s / baseline,
                "peak_gpu_gib": peak,
            }
            results.append(r)
            print(
                f"{mode:30s} {r['controlnets']:11d} {sdxl_s:12.3f} {scene_s:13.3f} {r['ratio_vs_adapter']:9.2f}x"
                + (f" {peak:8.1f}" if peak is not None else ""),
                flush=True,
            )
    del injector
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "device": name,
                    "size": args.size,
                    "steps": args.steps,
                    "arch": args.arch,
                    "batch": args.batch,
                    "images": args.images,
                    "parameters": counts,
                    "results": results,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
