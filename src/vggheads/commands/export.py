"""``vggheads export``: write the manifests in the paper's release layout.

    vggheads export --manifest data/manifest --out release/ [--image-format jpg] [--link]

Layout: ``split_000NN/images/<id>.<ext>``, ``split_000NN/annotations/<id>.npz`` with ``bbox``
(N, 4) xywh, ``extended_bbox`` (N, 4) xywh and ``3dmm_params`` (N, 1, 413) in the release's
(DAD-3DNet) convention, and an empty ``split_000NN/files.txt``; see :mod:`vggheads.manifest.to_release`.
``--out DIR/large`` gives the paper's tree exactly: ``dataset.source: release`` with
``dataset.release.root: DIR`` imports it back (docs/release.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _cli(args: argparse.Namespace) -> int:
    from ..manifest.to_release import export_release

    stats = export_release(args.manifest, args.out, image_format=args.image_format, link=args.link)
    print(f"exported {stats['images']} images, {stats['heads']} heads in {len(stats['splits'])} splits to {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write the manifests in the paper's release layout (split_000NN/...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--manifest", type=Path, default=Path("data/manifest"), help="directory of images/heads.parquet")
    p.add_argument("--out", type=Path, required=True, help="release directory to write (replaced atomically)")
    p.add_argument(
        "--image-format",
        choices=["same", "jpg"],
        default="same",
        help="same: copy the images as they are; jpg: convert to JPEG quality 95 (the release's format)",
    )
    p.add_argument("--link", action="store_true", help="hard-link images instead of copying (same filesystem)")
    p.set_defaults(func=_cli)
