"""The ``vggheads`` command: one subcommand per pipeline stage plus user tools.

Subcommands are discovered from the modules of :mod:`vggheads.stages` (one per Snakemake rule,
same name) and :mod:`vggheads.commands`; each module defines ``register(subparsers)`` and keeps
heavy imports inside its functions so ``vggheads --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import __version__
from .errors import VggheadsError
from .offline import configure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggheads",
        description="Synthetic multi-person 3D head data, a one-stage 3D head detector, and its evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"vggheads {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for package in ("vggheads.stages", "vggheads.commands"):
        pkg = importlib.import_module(package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package}.{info.name}")
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        result = args.func(args)
    except VggheadsError as exc:
        print(f"vggheads {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vggheads {args.command}: interrupted; outputs are written atomically, rerun to finish", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
