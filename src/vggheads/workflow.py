"""Glue the Snakefile calls at parse time: validate the config and freeze it for the jobs."""

from __future__ import annotations

from .config import freeze, shard_ids, validate
from .errors import ConfigError


def prepare(config: dict) -> tuple[str, list[str]]:
    """Validate Snakemake's merged config; return (frozen params path, shard ids)."""
    try:
        validate(config, "params.yaml (with --config/--configfile overrides)")
    except ConfigError as exc:
        from snakemake.exceptions import WorkflowError

        raise WorkflowError(str(exc)) from None
    return str(freeze(config)), shard_ids(config)
