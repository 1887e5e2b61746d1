"""``vggheads predict IMAGE...``: detect every head and its 3D head with the trained model.

For each image: prints one JSON line ``{"image": ..., "heads": [...]}`` (per head: box, score, the
413 parameters, 68 landmarks (x, y, depth), rotation, yaw/pitch/roll, face box) and, with
``--out DIR``, writes ``DIR/<name>.json`` and the overlay ``DIR/<name>.png`` (boxes with scores,
landmarks, mesh, pose axes: red = the head's left, green = up, blue = where the face looks).
``--onnx`` runs the exported ONNX graph with onnxruntime instead of torch; the output is the same.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def predict(images: list[Path], weights: Path, onnx: Path | bool | None = None, out: Path | None = None,
            head_model: Path | None = None, conf: float = 0.5, iou: float = 0.5, vertices: bool = False) -> list[dict]:
    """Run the detector on ``images``; returns one ``{"image", "heads"}`` dict per image (see the module doc)."""
    from PIL import Image

    from ..evaluation.types import load_rgb
    from ..io import atomic_path, write_json
    from ..model.draw import overlay
    from ..model.inference import HeadDetector

    detector = HeadDetector(weights, onnx=onnx, head_model=head_model, conf=conf, iou=iou)
    results = []
    names: dict[str, int] = {}
    for path in images:
        image = load_rgb(path)
        heads = detector(image)
        record = {"image": str(path), "width": image.shape[1], "height": image.shape[0],
                  "backend": "onnx" if onnx else "torch", "heads": [h.to_dict(vertices=vertices) for h in heads]}
        results.append(record)
        print(json.dumps(record), flush=True)
        if out is not None:
            stem = Path(path).stem
            names[stem] = names.get(stem, 0) + 1
            if names[stem] > 1:  # two inputs with the same name do not overwrite each other
                stem = f"{stem}_{names[stem]}"
            write_json(Path(out) / f"{stem}.json", record)
            with atomic_path(Path(out) / f"{stem}.png") as tmp:
                Image.fromarray(overlay(image, heads, detector.geometry.faces)).save(tmp)
    return results


def _cli(args: argparse.Namespace) -> int:
    onnx = None if args.onnx is None else (True if args.onnx == "" else Path(args.onnx))
    predict(args.images, args.weights, onnx=onnx, out=args.out, head_model=args.head_model, conf=args.conf,
            iou=args.iou, vertices=args.vertices)
    return 0


def register(sub) -> None:
    p = sub.add_parser("predict", help="detect heads and their 3D head model in images; JSON + overlay pictures",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", type=Path, nargs="+", help="image files (any format PIL reads)")
    p.add_argument("--weights", type=Path, default=Path("data/model"),
                   help="model.safetensors or the directory holding it (default: data/model, the train stage's output)")
    p.add_argument("--onnx", nargs="?", const="", default=None, metavar="PATH",
                   help="run the ONNX export with onnxruntime (default file: model.onnx beside the weights)")
    p.add_argument("--head-model", type=Path, default=None,
                   help="head-model file (default: the one recorded at training time)")
    p.add_argument("--out", type=Path, default=None, help="write <name>.json and <name>.png overlays here")
    p.add_argument("--conf", type=float, default=0.5, help="score threshold (default 0.5, the paper's)")
    p.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold (default 0.5, the paper's)")
    p.add_argument("--vertices", action="store_true", help="include every head's vertices in the JSON (large)")
    p.set_defaults(func=_cli)
