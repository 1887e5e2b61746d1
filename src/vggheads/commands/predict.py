"""``vggheads predict IMAGE...``: detect every head and its 3D head, with this project's trained model
or the paper's released one.

For each image: prints one JSON line ``{"image": ..., "heads": [...]}`` (per head: box, score, the
413 parameters, 68 landmarks (x, y, depth), rotation, yaw/pitch/roll, face box; the vertices only
with ``--vertices``) and, with ``--out DIR``, writes ``DIR/<name>.json`` and the overlay
``DIR/<name>.png`` (boxes with scores, landmarks, mesh, pose axes: red = the head's left, green =
up, blue = where the face looks).

``--weights`` is this project's model (``model.safetensors`` or its folder; ``--onnx`` runs its
ONNX export with onnxruntime, same output) or the paper's released model: ``vgg_heads_l.trcd``
(TorchScript) or ``vgg_heads_l.onnx`` (CC BY-NC 4.0, from the Hugging Face repository
okupyn/vgg_heads; never downloaded), run with its own pipeline (docs/release.md). The released
model's parameters are FLAME's: pass ``--head-model generic_model.pkl`` (default: params.yaml's
``headmodel.flame``, else the project's head model, which runs but is not FLAME).

Safe to point at your photos: no output ever replaces an input file (an output whose name is an
input's gets ``_pred``); ``--conf``/``--iou`` outside [0, 1] are refused; an image that cannot be
read is reported on stderr, the others still run, and the exit status is 1 at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not (0.0 <= value <= 1.0):  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def default_head_model(params_path: Path = Path("params.yaml")) -> Path:
    """The head model for the released model: params.yaml's ``headmodel.flame``, else the project's own."""
    from ..errors import MissingWeightsError

    if params_path.exists():
        try:
            import yaml

            flame = ((yaml.safe_load(params_path.read_text()) or {}).get("headmodel") or {}).get("flame")
        except Exception:  # a broken params.yaml is not this command's business
            flame = None
        if flame:
            return Path(flame)
    own = Path("data/headmodel/head_model.npz")
    if own.exists():
        return own
    raise MissingWeightsError(
        "head model for the released VGGHeads model (FLAME generic_model.pkl)",
        own,
        "Pass --head-model with your FLAME 2020 generic_model.pkl (registration at "
        "https://flame.is.tue.mpg.de; its landmark embedding next to it), or build the "
        "project's own with `vggheads build-head-model --out data/headmodel/head_model.npz` "
        "(runs, but not comparable to the paper).",
    )


class _Outputs:
    """Output names in ``out``: ``<stem>.json`` / ``<stem>.png``, never an input file, never twice."""

    def __init__(self, out: Path, inputs: list[Path]):
        self.out = Path(out)
        self.inputs = {os.path.realpath(p) for p in inputs}
        self.used: set[str] = set()

    def _free(self, stem: str) -> bool:
        if stem in self.used:
            return False
        return not any(os.path.realpath(self.out / f"{stem}{ext}") in self.inputs for ext in (".json", ".png"))

    def stem_for(self, path: Path) -> str:
        base = Path(path).stem
        candidates = [base, f"{base}_pred"] + [f"{base}_pred{k}" for k in range(2, 10000)]
        if base in self.used:  # a second input of the same name: <stem>_2, as before
            candidates = [f"{base}_{k}" for k in range(2, 10000)]
        for stem in candidates:
            if self._free(stem):
                self.used.add(stem)
                return stem
        raise RuntimeError(f"no free output name for {path} in {self.out}")


def build_detector(
    weights: Path, onnx=None, head_model: Path | None = None, conf: float = 0.5, iou: float = 0.5, channels: str = "rgb"
):
    """(detector, backend name, mesh faces for drawing) for this project's model or the released one."""
    from ..release.official import OfficialDetector, is_official_file, missing_model_error

    if is_official_file(weights):
        if not Path(weights).is_file():  # the model's own error first: the head model is the second question
            raise missing_model_error(weights)
        detector = OfficialDetector(weights, head_model or default_head_model(), conf=conf, iou=iou, channels=channels)
        return detector, detector.backend, detector.faces
    if Path(weights).suffix.lower() == ".onnx" and not onnx:  # this project's ONNX export given as --weights
        onnx, weights = Path(weights), Path(weights).parent
    from ..model.inference import HeadDetector

    detector = HeadDetector(weights, onnx=onnx, head_model=head_model, conf=conf, iou=iou)
    return detector, "onnx" if onnx else "torch", detector.geometry.faces


def predict(
    images: list[Path],
    weights: Path,
    onnx: Path | bool | None = None,
    out: Path | None = None,
    head_model: Path | None = None,
    conf: float = 0.5,
    iou: float = 0.5,
    vertices: bool = False,
    failures: list | None = None,
    channels: str = "rgb",
) -> list[dict]:
    """Run the detector on ``images``; returns one ``{"image", "heads"}`` dict per readable image
    (see the module doc). Unreadable images are reported and appended to ``failures`` as
    ``(path, message)``; the others still run."""
    from PIL import Image

    from ..errors import InputError
    from ..core.images import load_rgb
    from ..io import atomic_path, write_json
    from ..model.overlays import overlay

    for name, value in (("conf", conf), ("iou", iou)):
        if not (0.0 <= float(value) <= 1.0):
            raise InputError(f"--{name} must be in [0, 1], got {value}")
    detector, backend, faces = build_detector(Path(weights), onnx, head_model, conf, iou, channels)
    failures = failures if failures is not None else []
    names = _Outputs(out, images) if out is not None else None
    results = []
    for path in images:
        try:
            image = load_rgb(path)
        except InputError as exc:
            failures.append((str(path), str(exc)))
            print(f"vggheads predict: {exc}", file=sys.stderr, flush=True)
            continue
        heads = detector(image)
        record = {
            "image": str(path),
            "width": image.shape[1],
            "height": image.shape[0],
            "backend": backend,
            "heads": [h.to_dict(vertices=vertices) for h in heads],
        }
        results.append(record)
        print(json.dumps(record), flush=True)
        if names is not None:
            stem = names.stem_for(path)
            write_json(Path(out) / f"{stem}.json", record)
            with atomic_path(Path(out) / f"{stem}.png") as tmp:
                Image.fromarray(overlay(image, heads, faces)).save(tmp)
    return results


def _cli(args: argparse.Namespace) -> int:
    onnx = None if args.onnx is None else (True if args.onnx == "" else Path(args.onnx))
    failures: list = []
    predict(
        args.images,
        args.weights,
        onnx=onnx,
        out=args.out,
        head_model=args.head_model,
        conf=args.conf,
        iou=args.iou,
        vertices=args.vertices,
        failures=failures,
        channels=args.channels,
    )
    if failures:
        print(
            f"vggheads predict: {len(failures)} of {len(args.images)} images failed: "
            + ", ".join(p for p, _ in failures),
            file=sys.stderr,
        )
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="detect heads and their 3D head model in images; JSON + overlay pictures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", type=Path, nargs="+", help="image files (any format PIL reads)")
    p.add_argument(
        "--weights",
        type=Path,
        default=Path("data/model"),
        help="model.safetensors or its directory (default: data/model, the train stage's output), "
        "or the released vgg_heads_l.trcd / vgg_heads_l.onnx",
    )
    p.add_argument(
        "--onnx",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="run this project's ONNX export with onnxruntime (default file: model.onnx beside the weights)",
    )
    p.add_argument(
        "--head-model",
        type=Path,
        default=None,
        help="head-model file (this project's model: default the one recorded at training time; "
        "the released model: FLAME generic_model.pkl, default params.yaml's headmodel.flame)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write <name>.json and <name>.png overlays here (never over an input: then <name>_pred)",
    )
    p.add_argument(
        "--conf", type=_unit_interval, default=0.5, help="score threshold in [0, 1] (default 0.5, the paper's)"
    )
    p.add_argument(
        "--iou", type=_unit_interval, default=0.5, help="NMS IoU threshold in [0, 1] (default 0.5, the paper's)"
    )
    p.add_argument("--vertices", action="store_true", help="include every head's vertices in the JSON (large)")
    p.add_argument(
        "--channels",
        choices=["rgb", "bgr"],
        default="rgb",
        help="the released model only: channel order fed to it (rgb: the head_detector package; "
        "bgr: the paper's training code; docs/release.md)",
    )
    p.set_defaults(func=_cli)
