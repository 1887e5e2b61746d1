"""``vggheads blip2``: the BLIP-2 captioner of stage caption_images.

- ``check [MODEL]``: say whether a BLIP-2 model (a directory or a cached id) is found, without loading it.
- ``caption IMAGE... [--model M]``: caption photos (what the stage does per batch).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _check(args: argparse.Namespace) -> int:
    from ..captions.blip2 import resolve

    print(f"found: {resolve(args.model)}")
    return 0


def _caption(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..captions.blip2 import Captioner

    captioner = Captioner(args.model, max_new_tokens=args.max_new_tokens)
    images = [Image.open(p).convert("RGB") for p in args.images]
    for path, text in zip(args.images, captioner(images)):
        print(f"{path}\t{text}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "blip2",
        help="BLIP-2 captioner: build the tiny model, check or run a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="blip2_command", required=True)
    c = s.add_parser("check", help="is the model found locally (directory or Hugging Face cache)?")
    c.add_argument("model", nargs="?", default="Salesforce/blip2-opt-2.7b")
    c.set_defaults(func=_check)
    r = s.add_parser("caption", help="caption images")
    r.add_argument("images", nargs="+", type=Path)
    r.add_argument("--model", default="Salesforce/blip2-opt-2.7b")
    r.add_argument("--max-new-tokens", type=int, default=50)
    r.set_defaults(func=_caption)
