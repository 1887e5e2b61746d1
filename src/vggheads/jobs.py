"""A stage's command line as one typed object: its *job*.

Each stage module (``vggheads.stages.<rule>``) defines a frozen dataclass, its job, holding the paths
and options its Snakemake rule passes on the command line, with the help of each flag in the field's
metadata (:func:`flag`). This module builds the stage's argparse subcommand from that dataclass and
turns the parsed arguments back into the job, so a stage's ``register`` is one call of
:func:`add_command`. Stages import this module; it imports no stage.

The mapping, field to flag:

- the flag is ``--`` plus the field name with ``_`` as ``-`` (``render_table`` -> ``--render-table``);
- a field without a default is a required flag;
- the annotation gives argparse's ``type``: ``Path``, ``str``, ``int``, ``float`` (``X | None`` the same,
  default ``None``); ``list[X]`` takes one or more values (``nargs="+"``), or any number when the field
  has a default (``nargs="*"``); ``bool`` is a switch (``store_true``, default ``False``);
- the help text is ``metadata["help"]``, which :func:`flag` sets.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

_SCALARS = (Path, str, int, float)


def flag(help: str, default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING):
    """A job field: the flag's help text, and its default (none: the flag is required)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"help": help})


def _unwrap_optional(tp):
    """``X | None`` -> ``X``; anything else unchanged."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        raise TypeError(f"a job field can only be X or X | None, not {tp}")
    return tp


def flag_name(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def argument_spec(job_type: type, field: dataclasses.Field, hints: dict) -> dict:
    """The keyword arguments of ``add_argument`` for one field of a job dataclass."""
    tp = _unwrap_optional(hints[field.name])
    has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
    if "help" not in field.metadata:
        raise TypeError(f"{job_type.__name__}.{field.name} has no help text (use jobs.flag)")
    spec: dict = {"help": field.metadata["help"], "dest": field.name}
    if tp is bool:
        spec["action"] = "store_true"
        return spec
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        tp = item
        spec["nargs"] = "*" if has_default else "+"
    if tp not in _SCALARS:
        raise TypeError(f"{job_type.__name__}.{field.name}: unsupported type {hints[field.name]}")
    if tp is not str:
        spec["type"] = tp
    if has_default:
        spec["default"] = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    else:
        spec["required"] = True
    return spec


def add_arguments(parser: argparse.ArgumentParser, job_type: type) -> None:
    """One flag per field of ``job_type`` on ``parser``."""
    hints = typing.get_type_hints(job_type)
    for field in dataclasses.fields(job_type):
        parser.add_argument(flag_name(field), **argument_spec(job_type, field, hints))


def from_namespace(job_type: type, args: argparse.Namespace):
    """The job of ``job_type`` from parsed arguments (other attributes of ``args`` are ignored)."""
    return job_type(**{f.name: getattr(args, f.name) for f in dataclasses.fields(job_type)})


def add_command(
    sub,
    name: str,
    job_type: type,
    run: typing.Callable,
    *,
    help: str,
    description: str | None = None,
    aliases: list[str] | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose flags are the fields of ``job_type``; it calls ``run(job)``."""
    p = sub.add_parser(
        name,
        aliases=aliases or [],
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p, job_type)
    p.set_defaults(func=lambda args: run(from_namespace(job_type, args)))
    return p
