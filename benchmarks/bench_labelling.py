"""Labelling speed in heads/s: ``python benchmarks/bench_labelling.py [--images 12] [--size 256]``.

On procedural images (rendered here from random skeletons, with their exact truth as detections):

1. ``truth`` labeller + decoding the 68 landmarks and pose through the head model: batched decoding
   (what ``label_3dmm`` does) against decoding head by head (the baseline, same run);
2. ``dad3dnet``: the real preprocessing and pixel re-expression around a stand-in TorchScript
   network of DAD-3DNet's size (torchvision ResNet-50 with random weights, 413 outputs, traced
   with the same input/output contract; the official weights are not redistributable): the crops
   of an image in one forward pass (what ``label_3dmm`` does) against one crop per forward pass;
3. ``landmark-fit``: dlib's 68-point predictor + the batched fit (all heads of an image at once).

Timings are the fastest of ``--repeats`` runs (other jobs on a shared machine disturb them less).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def fastest(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--head-model", type=Path, default=None, help="a head model .npz (default: build one)")
    args = ap.parse_args()

    import torch

    from vggheads.detection.data import write_procedural_shard
    from vggheads.core.images import load_rgb as read_rgb
    from vggheads.geometry import FlameLayer
    from vggheads.headmodel import build_head_model, load_head_model, save_head_model
    from vggheads.labelling.base import decode_labels
    from vggheads.labelling.crops import extend_boxes
    from vggheads.labelling.dad3dnet import OUTPUT_KEY, Dad3dNetLabeller
    from vggheads.labelling.landmark_fit import LandmarkFitLabeller
    from vggheads.labelling.truth import TruthLabeller, truth_by_sample
    from vggheads.schemas import read_table

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="bench-labelling-") as tmp:
        tmp = Path(tmp)
        hm = args.head_model
        if hm is None:
            hm = tmp / "head_model.npz"
            save_head_model(build_head_model(0), hm)
        model = load_head_model(hm)
        layer = FlameLayer(model)
        _, heads_path, images_dir = write_procedural_shard(
            hm, "00000", args.images, args.size, args.size, tmp, seed=0, render_cfg={"supersample": 1}
        )
        truth = truth_by_sample(read_table(heads_path, "render_heads"))
        data = []
        for sid, t in truth.items():
            image = read_rgb(images_dir / f"{sid}.png")
            data.append((sid, image, t.boxes, extend_boxes(t.boxes, 0.25, args.size, args.size)))
        n = sum(len(b) for _, _, b, _ in data)
        print(f"{len(data)} images with heads, {n} heads, {args.size} px; torch threads {torch.get_num_threads()}")

        truth_labeller = TruthLabeller(truth)

        def truth_batched():
            params = np.concatenate([truth_labeller(im, sid, b, e).params for sid, im, b, e in data])
            decode_labels(params, layer)

        def truth_per_head():
            for sid, im, b, e in data:
                for p in truth_labeller(im, sid, b, e).params:
                    decode_labels(p[None], layer)

        t_b, t_h = fastest(truth_batched, args.repeats), fastest(truth_per_head, args.repeats)
        rows = [("truth + decode, batched", n / t_b), ("truth + decode, per head (baseline)", n / t_h)]

        import torchvision

        class StandIn(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torchvision.models.resnet50(num_classes=413)

            def forward(self, x):
                return {OUTPUT_KEY: self.net(x)}

        net = StandIn().eval()
        path = tmp / "standin.trcd"
        with torch.no_grad():
            torch.jit.trace(net, torch.zeros(1, 3, 256, 256), strict=False).save(str(path))
        dad16 = Dad3dNetLabeller(path, device="cpu", batch_size=16)
        dad1 = Dad3dNetLabeller(path, device="cpu", batch_size=1)
        few = data[: max(1, len(data) // 2)]
        n_few = sum(len(b) for _, _, b, _ in few)

        def run(labeller, items):
            for sid, im, b, e in items:
                labeller(im, sid, b, e)

        t16 = fastest(lambda: run(dad16, few), args.repeats)
        t1 = fastest(lambda: run(dad1, few), args.repeats)
        rows += [
            ("dad3dnet stand-in (ResNet-50), image's crops", n_few / t16),
            ("dad3dnet stand-in, one crop a pass (baseline)", n_few / t1),
        ]

        fit = LandmarkFitLabeller(model, n_shape=20, n_expr=10)
        t_fit = fastest(lambda: run(fit, data), args.repeats)
        rows.append(("landmark-fit (dlib 68 + batched fit)", n / t_fit))

        print(f"{'labeller':44s}{'heads/s':>10s}")
        for name, rate in rows:
            print(f"{name:44s}{rate:10.1f}")
        print(
            f"batched / per-head decoding: {rows[0][1] / rows[1][1]:.1f}x; "
            f"dad3dnet an image's crops / one crop a pass: {rows[2][1] / rows[3][1]:.2f}x"
        )


if __name__ == "__main__":
    main()
