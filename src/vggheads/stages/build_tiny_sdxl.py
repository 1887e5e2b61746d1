"""Stage ``build_tiny_sdxl``: the tiny random-weight SDXL (UNet, VAE, text encoders, the openpose
adapter and ControlNets, and the head-mesh PNCC/depth ControlNets) that ``render.backend:
tiny-sdxl`` runs offline on a CPU (docs/sdxl.md).

    vggheads build-tiny-sdxl --out data/models/tiny-sdxl [--seed 0]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag


@dataclass(frozen=True, kw_only=True)
class BuildTinySdxlJob:
    out: Path = flag("directory to write (replaced atomically)")
    seed: int = flag("seed of the random weights", 0)


def _cli(job: BuildTinySdxlJob) -> int:
    from ..render.tiny_sdxl import build_tiny_sdxl

    build_tiny_sdxl(job.out, seed=job.seed)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "build-tiny-sdxl",
        BuildTinySdxlJob,
        _cli,
        help="build the tiny random-weight SDXL model directory",
        description=__doc__,
    )
