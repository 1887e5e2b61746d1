"""``vggheads dvc-sync``: regenerate dvc.yaml from the Snakemake rules (``--check`` only compares)."""

from __future__ import annotations

import argparse
import sys


def _cli(args: argparse.Namespace) -> int:
    from ..dvc_sync import sync

    ok, _ = sync(check=args.check)
    if args.check and not ok:
        print("dvc.yaml is out of date with the Snakemake rules: run `vggheads dvc-sync`", file=sys.stderr)
        return 1
    print("dvc.yaml is up to date" if args.check else "wrote dvc.yaml")
    return 0


def register(sub) -> None:
    p = sub.add_parser("dvc-sync", help="regenerate dvc.yaml from the Snakemake rules", description=__doc__)
    p.add_argument("--check", action="store_true", help="only check that dvc.yaml is up to date (exit 1 if not)")
    p.set_defaults(func=_cli)
