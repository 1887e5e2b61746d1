"""``vggheads sdxl``: the SDXL render backends' tools.

- ``check``: say where each model configured under ``render.sdxl`` is found on this machine, or
  what is missing and how to fetch it; loads nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def check_models(params: dict, backend: str) -> list[tuple[str, str, Path]]:
    """(params key, reference, local directory) of every model ``backend`` would load.

    Raises :class:`vggheads.errors.MissingWeightsError` at the first one not on this machine.
    """
    from ..render.sdxl_pipeline import CONTROLNET_KEYS, SdxlSettings, resolve_model

    s = SdxlSettings.from_params(params, backend)
    wanted = [("render.sdxl.base_model", s.base_model, "SDXL base model")]
    if s.adapter:
        wanted.append(("render.sdxl.adapter", s.adapter, "T2I-Adapter"))
    for condition, ref in s.controlnets:  # openpose, and the head-mesh modes' PNCC and depth ControlNets
        key, what = CONTROLNET_KEYS[condition]
        wanted.append((key, ref, what))
    if s.vae:
        wanted.append(("render.sdxl.vae", s.vae, "VAE"))
    if s.safety_checker:
        wanted.append(("render.sdxl.safety_checker", s.safety_checker, "safety checker"))
    return [(key, ref, resolve_model(ref, what, key, backend)) for key, ref, what in wanted]


def _check(args: argparse.Namespace) -> int:
    from ..config import load_params

    params = load_params(args.params)
    backend = args.backend or params["render"]["backend"]
    if backend not in ("sdxl", "tiny-sdxl"):
        backend = "sdxl"
    for key, ref, path in check_models(params, backend):
        print(f"{key}: {ref} -> {path}")
    print(f"backend {backend}: every configured model is on this machine")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "sdxl",
        help="SDXL render backend tools (build the tiny model, check weights)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="sdxl_command", metavar="SUBCOMMAND", required=True)
    c = cmds.add_parser("check", help="locate the models render.sdxl names (local dirs or the HF cache)")
    c.add_argument("--params", type=Path, default=Path("params.yaml"))
    c.add_argument(
        "--backend",
        choices=["sdxl", "tiny-sdxl"],
        default=None,
        help="default: render.backend when it is an SDXL one, else sdxl",
    )
    c.set_defaults(func=_check)
