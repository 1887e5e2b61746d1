"""``vggheads release``: tools around what the paper released (docs/release.md).

    vggheads release standin --model data/model --out standin.trcd     # or standin.onnx
    vggheads release splits /data/VGGHeads                               # what a release root holds

``standin`` writes a file with exactly the released model's inputs and outputs (``(B, 3, S, S)`` in
[0, 1] -> ``boxes [B, A, 4]``, ``scores [B, A, 1]``, ``params [B, A, 413]``) around this project's
trained model, so ``vggheads predict --weights standin.trcd``, ``evaluate.systems:
[vggheads-official]`` and ``labels.labeller: vggheads`` can be tried without ``vgg_heads_l.trcd``.
``splits`` lists the split folders of a release root with their image, annotation and files.txt counts.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _standin(args: argparse.Namespace) -> int:
    from ..release.standin import build_standin

    out = build_standin(args.model, args.out, imgsz=args.imgsz)
    print(
        f"wrote {out}: the released model's contract around {args.model} "
        f"({'ONNX' if out.suffix == '.onnx' else 'TorchScript'}; input size {args.imgsz or 'the model' + chr(39) + 's'})"
    )
    return 0


def _splits(args: argparse.Namespace) -> int:
    from ..release.layout import list_splits, scan_split, split_root

    base = split_root(args.root)
    ids = list_splits(args.root)
    print(f"{base}: {len(ids)} splits")
    for s in ids:
        f = scan_split(args.root, s)
        both = len(set(f.images) & set(f.annotations))
        print(
            f"split_{s}  images {len(f.images):>7}  annotations {len(f.annotations):>7}  paired {both:>7}  "
            f"files.txt {len(f.removed) if f.files_txt else '-':>6}"
        )
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "release",
        help="stand-ins of the released model; what a release root holds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="release_command", metavar="COMMAND", required=True)
    s = cmds.add_parser("standin", help="the released model's contract around this project's model (.trcd or .onnx)")
    s.add_argument("--model", type=Path, default=Path("data/model"), help="model.safetensors or its folder")
    s.add_argument("--out", type=Path, required=True, help="output file: .trcd/.pt (TorchScript) or .onnx")
    s.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's)")
    s.set_defaults(func=_standin)
    s = cmds.add_parser("splits", help="list the split_000NN folders of a release root")
    s.add_argument("root", type=Path, help="the unpacked release (holding large/) or its large/ folder")
    s.set_defaults(func=_splits)
