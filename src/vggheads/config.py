"""params.yaml: loading, validation against ``workflow/schemas/params.schema.yaml``, shard ids, seeds.

The same file is Snakemake's configfile and DVC's params file. Every stage command reads it through
:func:`load_params`, so a wrong key or value stops the run before any work with a message that
names the key and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "params.schema.yaml"
SHARD_WIDTH = 5  # shard ids are zero-padded like the paper's release splits (split_00000)


def _load_schema() -> dict:
    if not SCHEMA_PATH.exists():
        raise ConfigError(f"parameter schema not found at '{SCHEMA_PATH}': run vggheads from its repository checkout")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _describe(schema: dict) -> str:
    """Say in words what a JSON-schema node expects."""
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type", "value")
    kinds = " or ".join(kind) if isinstance(kind, list) else kind
    bounds = []
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in schema:
            bounds.append(f"{word} {schema[key]}")
    if "minItems" in schema:
        bounds.append(f"at least {schema['minItems']} items")
    if "maxItems" in schema:
        bounds.append(f"at most {schema['maxItems']} items")
    if "minLength" in schema:
        bounds.append("non-empty")
    text = kinds + (" " + ", ".join(bounds) if bounds else "")
    if "description" in schema:
        text += f" ({schema['description']})"
    return text


def validate(params: dict, source: str = "params.yaml") -> dict:
    """Validate ``params`` against the schema, then the cross-key rules of :mod:`vggheads.config_rules`;
    raise :class:`ConfigError` naming every bad key (or pair of keys)."""
    import jsonschema

    schema = _load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - set(allowed))
            for name in extra:
                full = f"{key}.{name}" if err.absolute_path else name
                problems.append(f"unknown key '{full}' (allowed here: {', '.join(allowed)})")
        elif err.validator == "required":
            problems.append(f"{err.message.split(' is a required')[0]} missing under '{key}'")
        else:
            problems.append(f"key '{key}': expected {_describe(err.schema)}, got {err.instance!r}")
    if problems:
        raise ConfigError(f"{source}: invalid parameters:\n  - " + "\n  - ".join(problems))
    from .config_rules import check

    conflicts = check(params)  # keys against each other (only once every key is valid on its own)
    if conflicts:
        raise ConfigError(f"{source}: incompatible settings:\n  - " + "\n  - ".join(conflicts))
    return params


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    """Read and validate a params file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"parameter file '{path}' not found")
    try:
        with open(path, encoding="utf-8") as fh:  # a stream, so that the error's position names the file
            params = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return validate(params, str(path))


def shard_ids(params: dict) -> list[str]:
    """The shard ids, e.g. ``['00000', '00001']`` for ``dataset.shards: 2``."""
    return [f"{i:0{SHARD_WIDTH}d}" for i in range(params["dataset"]["shards"])]


def shard_index(shard: str) -> int:
    if not shard.isdigit():
        raise ConfigError(f"shard id '{shard}' is not a number (expected e.g. '00000')")
    return int(shard)


def rng(params: dict, stage: str, *keys: int) -> np.random.Generator:
    """A generator seeded by (global seed, stage name, keys): independent streams per stage/shard/sample."""
    salt = int.from_bytes(hashlib.sha256(stage.encode()).digest()[:4], "little")
    return np.random.default_rng([params["seed"], salt, *keys])


def sample_seed(params: dict, shard: int, index: int) -> int:
    """A 31-bit seed for one sample (used by the renderers, e.g. as a torch.Generator seed)."""
    return int(rng(params, "sample", shard, index).integers(0, 2**31 - 1))


def section_hash(params: dict, *keys: str) -> str:
    """A short digest of some top-level sections, for provenance columns."""
    blob = json.dumps({k: params.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def get(params: dict, dotted: str, default: Any = None) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
