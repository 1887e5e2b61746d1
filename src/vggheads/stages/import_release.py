"""Stage ``import_release`` (``dataset.source: release``): one split of the paper's released dataset
(``large/split_000NN/{images, annotations, files.txt}``) into this project's manifest tables.

Reads ``dataset.release`` (root, which splits are validation, how images are referenced) and the
head model (FLAME via ``headmodel.flame`` for labels comparable to the paper's). Writes
``OUT/images.parquet``, ``OUT/heads.parquet``, ``OUT/head_boxes.parquet``, ``OUT/stats.json`` and
``OUT/images/`` (empty unless ``images`` is ``link`` or ``copy``); see
:mod:`vggheads.release.importer` for the columns and every counted drop. docs/release.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def split_name(split: str, val_splits: int) -> str:
    """The paper's split: ``split_00000``-``split_00001`` (``val_splits`` = 2) are validation."""
    return "val" if int(split) < int(val_splits) else "train"


def import_release(params: dict, split: str, head_model: Path, out_dir: Path, manifest_dir: Path) -> dict:
    """Import one split; returns its stats."""
    from ..errors import ConfigError
    from ..release.importer import import_split
    from ..tracking import log_run

    cfg = params["dataset"]["release"]
    if not cfg["root"]:
        raise ConfigError(
            "dataset.release.root is not set: point it at the unpacked VGGHeads release "
            "(the folder holding large/split_000NN/)"
        )
    stats = import_split(
        cfg["root"],
        split,
        head_model,
        out_dir,
        manifest_dir,
        split_name(split, cfg["val_splits"]),
        images=cfg["images"],
        chunk=cfg["chunk"],
        row_group_size=params["manifest"]["row_group_size"],
    )
    log_run(
        "import_release",
        params,
        shard=split,
        metrics={k: v for k, v in stats.items() if k not in ("dropped_examples", "root", "head_model")},
        run_params={"dataset": params["dataset"]},
    )
    return stats


def _cli(args: argparse.Namespace) -> int:
    from ..config import load_params

    # the decoding's large product runs in numpy's BLAS: as many threads as the job was given, not the
    # machine's cores (where threadpoolctl is installed; otherwise OPENBLAS_NUM_THREADS decides)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(max(1, int(args.threads)))
    except ImportError:
        pass
    params = load_params(args.params)
    import_release(params, args.shard, Path(args.head_model), Path(args.out_dir), Path(args.manifest_dir))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "import-release",
        help="import one split of the paper's released dataset into manifest tables",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--shard", required=True, help="split id, e.g. 00000 for split_00000")
    p.add_argument("--head-model", required=True, help="head model (.npz, or FLAME generic_model.pkl)")
    p.add_argument("--out-dir", required=True, help="folder of the split's tables (data/release/<split>)")
    p.add_argument(
        "--manifest-dir",
        default="data/manifest",
        help="folder the manifest will live in (image paths are relative to it)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="BLAS threads for the decoding (default 1: what the rule gives the job)"
    )
    p.set_defaults(func=_cli)
