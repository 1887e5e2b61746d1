"""Reading LAION-format metadata parquet files (paths or globs)."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError

URL_COLUMNS = ("URL", "url")
CAPTION_COLUMNS = ("TEXT", "caption", "text", "CAPTION")
OPTIONAL = {
    "NSFW": ("NSFW", "nsfw"),
    "punsafe": ("punsafe",),
    "pwatermark": ("pwatermark",),
    "WIDTH": ("WIDTH", "width"),
    "HEIGHT": ("HEIGHT", "height"),
    "similarity": ("similarity",),
}


@dataclass
class SourceRows:
    """The rows of one metadata file, columns renamed to the canonical names."""

    path: str
    table: pa.Table  # columns: url, caption, and whichever of OPTIONAL's keys the file has
    binary_caption: bool = False  # the caption column holds bytes (decoded as UTF-8 row by row)


def resolve(patterns: list[str]) -> list[str]:
    """Expand paths/globs into a sorted, de-duplicated file list; a pattern matching nothing is an error."""
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise InputError(f"captions.sources: the pattern '{pattern}' matches no file")
        for m in matches:
            if not Path(m).is_file():
                raise InputError(f"captions.sources: '{m}' not found (expected a LAION-format parquet file)")
            if m not in files:
                files.append(m)
    return files


def _pick(names: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in names), None)


def read_source(path: str) -> SourceRows:
    """Read one file; raise InputError naming the file when it is unreadable or lacks a caption/URL column."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(f"{path}: cannot read as parquet ({exc})") from None
    names = pf.schema_arrow.names
    url_col = _pick(names, URL_COLUMNS)
    cap_col = _pick(names, CAPTION_COLUMNS)
    if cap_col is None:
        raise InputError(
            f"{path}: no caption column (expected one of {', '.join(CAPTION_COLUMNS)}; found {', '.join(names)})"
        )
    if url_col is None:
        raise InputError(f"{path}: no URL column (expected one of {', '.join(URL_COLUMNS)}; found {', '.join(names)})")
    wanted = {"url": url_col, "caption": cap_col}
    for key, cands in OPTIONAL.items():
        col = _pick(names, cands)
        if col is not None:
            wanted[key] = col
    try:
        table = pf.read(columns=list(wanted.values()))
    except Exception as exc:
        raise InputError(f"{path}: cannot read columns {list(wanted.values())} ({exc})") from None
    table = table.rename_columns(list(wanted.keys()))
    kind = table.schema.field("caption").type
    binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
    return SourceRows(path=path, table=table, binary_caption=binary)
