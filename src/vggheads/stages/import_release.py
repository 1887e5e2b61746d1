"""Stage ``import_release`` (``dataset.source: release``): one split of the paper's released dataset
(``large/split_000NN/{images, annotations, files.txt}``) into this project's manifest tables.

Reads ``dataset.release`` (root, which splits are validation, how images are referenced) and the
head model (FLAME via ``headmodel.flame`` for labels comparable to the paper's). Writes
``OUT/images.parquet``, ``OUT/heads.parquet``, ``OUT/head_boxes.parquet``, ``OUT/stats.json`` and
``OUT/images/`` (empty unless ``images`` is ``link`` or ``copy``); see
:mod:`vggheads.release.importer` for the columns and every counted drop. docs/release.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


def split_name(split: str, val_splits: int) -> str:
    """The paper's split: ``split_00000``-``split_00001`` (``val_splits`` = 2) are validation."""
    return "val" if int(split) < int(val_splits) else "train"


@dataclass(frozen=True, kw_only=True)
class ImportReleaseJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("split id, e.g. 00000 for split_00000")
    head_model: Path = flag("head model (.npz, or FLAME generic_model.pkl)")
    out_dir: Path = flag("folder of the split's tables (data/release/<split>)")
    manifest_dir: Path = flag(
        "folder the manifest will live in (image paths are relative to it)", Path("data/manifest")
    )
    threads: int = flag("BLAS threads for the decoding (default 1: what the rule gives the job)", 1)


def import_release(params: dict, job: ImportReleaseJob) -> dict:
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
        job.shard,
        job.head_model,
        job.out_dir,
        job.manifest_dir,
        split_name(job.shard, cfg["val_splits"]),
        images=cfg["images"],
        chunk=cfg["chunk"],
        row_group_size=params["manifest"]["row_group_size"],
    )
    log_run(
        "import_release",
        params,
        shard=job.shard,
        metrics={k: v for k, v in stats.items() if k not in ("dropped_examples", "root", "head_model")},
        run_params={"dataset": params["dataset"]},
    )
    return stats


def _cli(job: ImportReleaseJob) -> int:
    from ..config import load_params

    # the decoding's large product runs in numpy's BLAS: as many threads as the job was given, not the
    # machine's cores (where threadpoolctl is installed; otherwise OPENBLAS_NUM_THREADS decides)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(max(1, int(job.threads)))
    except ImportError:
        pass
    import_release(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "import-release",
        ImportReleaseJob,
        _cli,
        help="import one split of the paper's released dataset into manifest tables",
        description=__doc__,
    )
