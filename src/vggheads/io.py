"""Atomic file output: a killed job leaves either the old state or the finished file, never half of one.

Work in progress goes to a hidden ``.NAME.partial-XXXX`` beside the target and is renamed onto it
when complete. A process killed with SIGKILL cannot remove its partial file; the next write of the
same target does (one job writes a given output, so no live writer owns it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _partial_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


def _clear_partials(path: Path) -> None:
    """Remove what an earlier, killed write of ``path`` left behind."""
    for stale in path.parent.glob(_partial_prefix(path) + "*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffix (or ``suffix``) so writers that infer the format
    from the extension (PIL, pyarrow) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_partials(path)
    fd, tmp = tempfile.mkstemp(
        prefix=_partial_prefix(path), suffix=suffix or "".join(path.suffixes) or ".tmp", dir=path.parent
    )
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_partials(path)
    tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(path), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented, key-sorted JSON atomically (stable bytes for DVC)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
