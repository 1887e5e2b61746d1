"""Stage ``build_tiny_blip2``: a random-weight BLIP-2 of the paper's classes (ViT + Q-Former + OPT),
tiny, so that ``captions.source: blip2`` with ``captions.blip2.model: tiny`` runs the captioning
code offline in seconds (docs/captions.md).

    vggheads build-tiny-blip2 --out data/models/tiny-blip2 [--seed 0]
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

from ..jobs import add_command, flag


@dataclass(frozen=True, kw_only=True)
class BuildTinyBlip2Job:
    out: Path = flag("directory to write (replaced atomically)")
    seed: int = flag("seed of the random weights", 0)


def _cli(job: BuildTinyBlip2Job) -> int:
    from ..captions.blip2 import build_tiny

    print(json.dumps(build_tiny(job.out, seed=job.seed)))
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "build-tiny-blip2",
        BuildTinyBlip2Job,
        _cli,
        help="write the tiny random-weight BLIP-2",
        description=__doc__,
    )
