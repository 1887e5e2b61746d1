"""Glue the Snakefile calls at parse time: validate the config, freeze it for the jobs, input lists."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .config import shard_ids, validate
from .errors import ConfigError, InputError

FROZEN_DIR = Path(".vggheads") / "params"


class FrozenParams(tuple):
    """The frozen params file a job reads, ``.vggheads/params/<sha256 of its content>.yaml``.

    A file is written once for each distinct merged config and never rewritten, so a job reads the
    parameters it was scheduled with even when another ``snakemake`` (a dry run with
    ``--config seed=7``, say) parses the workflow meanwhile: that one writes its own file.

    Rules pass it as ``params: file=PARAMS``; in a shell command it formats as the path. Snakemake's
    params trigger records ``repr()`` of each param, which here is the setting every stage reads
    (the seed), not the path: a changed seed reruns every job, a changed key elsewhere only the
    rules whose own config sections (their other ``params:``) changed.

    Why a one-element tuple: Snakemake keeps a tuple param as it is and formats it element by
    element (so, as the path), whereas it copies a ``str`` param to a plain string when applying
    wildcards, and leaves any other object out of its params trigger.
    """

    seed: int

    def __new__(cls, path: str, seed: int):
        obj = super().__new__(cls, (str(path),))
        obj.seed = seed
        return obj

    def __getnewargs__(self):
        return self[0], self.seed

    @property
    def path(self) -> str:
        return self[0]

    def __str__(self) -> str:
        return self[0]

    def __fspath__(self) -> str:
        return self[0]

    def __repr__(self) -> str:
        return f"frozen params (seed {self.seed})"


def freeze(config: dict, directory: Path = FROZEN_DIR) -> FrozenParams:
    """Write ``config`` to its content-addressed file (once, whole) and return its path.

    Several ``snakemake`` processes may freeze the same new config at once (SLURM jobs parse the
    workflow too): each writes a private temporary and hard-links it into place, which fails when
    the file exists, so the file appears complete and is never written twice.
    """
    import os
    import tempfile

    import yaml

    text = yaml.safe_dump(config, sort_keys=True)
    path = Path(directory) / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: same content, so a replace is harmless
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return FrozenParams(str(path), config["seed"])


def _workflow_error(exc: Exception):
    from snakemake.exceptions import WorkflowError

    return WorkflowError(str(exc))


def checked_configfile(path: str) -> str:
    """``path``, after checking that it parses as YAML: Snakemake's own error names no file or line."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            yaml.safe_load(fh)
    except OSError as exc:
        raise _workflow_error(ConfigError(f"parameter file '{path}' cannot be read: {exc.strerror}")) from None
    except yaml.YAMLError as exc:
        raise _workflow_error(ConfigError(f"{path}: not valid YAML: {exc}")) from None
    return path


def prepare(config: dict) -> tuple[FrozenParams, list[str]]:
    """Validate Snakemake's merged config; return (frozen params path, shard ids).

    The jobs read the frozen copy, so ``--configfile``/``--config`` overrides reach them.
    """
    try:
        validate(config, "params.yaml (with --config/--configfile overrides)")
    except ConfigError as exc:
        raise _workflow_error(exc) from None
    return freeze(config), shard_ids(config)


def caption_sources(config: dict) -> list[str]:
    """The LAION metadata files (globs expanded), so a changed source reruns sample_captions."""
    from .captions.sources import resolve

    try:
        return resolve(config["captions"]["sources"])
    except InputError as exc:
        raise _workflow_error(exc) from None
