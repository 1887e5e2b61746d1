"""Glue the Snakefile calls at parse time: validate the config, freeze it for the jobs, input lists."""

from __future__ import annotations

from pathlib import Path

from .config import shard_ids, validate
from .errors import ConfigError, InputError

FROZEN_PARAMS = Path(".vggheads") / "params.yaml"


def _workflow_error(exc: Exception):
    from snakemake.exceptions import WorkflowError

    return WorkflowError(str(exc))


def prepare(config: dict) -> tuple[str, list[str]]:
    """Validate Snakemake's merged config; return (frozen params path, shard ids).

    The jobs read the frozen copy, so ``--configfile``/``--config`` overrides reach them. Its path
    never changes (Snakemake's params trigger sees the same value), and it is rewritten only when
    its content changes.
    """
    import yaml

    from .io import atomic_path

    try:
        validate(config, "params.yaml (with --config/--configfile overrides)")
    except ConfigError as exc:
        raise _workflow_error(exc) from None
    text = yaml.safe_dump(config, sort_keys=True)
    if not FROZEN_PARAMS.exists() or FROZEN_PARAMS.read_text() != text:
        with atomic_path(FROZEN_PARAMS) as tmp:
            tmp.write_text(text)
    return str(FROZEN_PARAMS), shard_ids(config)


def caption_sources(config: dict) -> list[str]:
    """The LAION metadata files (globs expanded), so a changed source reruns sample_captions."""
    from .captions.sources import resolve

    try:
        return resolve(config["captions"]["sources"])
    except InputError as exc:
        raise _workflow_error(exc) from None
