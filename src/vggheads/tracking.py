"""MLflow tracking: one small module every stage logs through.

Default store: a local SQLite file, ``mlflow.db`` in the working directory, with artifacts under
``mlruns/``. ``MLFLOW_TRACKING_URI`` (or ``tracking.uri`` in params.yaml) points it elsewhere, e.g.
a tracking server. Runs are tagged with the git commit, the stage and the shard.

Parallel jobs share the SQLite file: every write happens under an advisory file lock, so two shard
jobs finishing together never see "database is locked" nor race on creating the tables.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


def tracking_uri(params: dict | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    uri = ((params or {}).get("tracking") or {}).get("uri")
    if uri:
        return uri
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def git_commit() -> str:
    from .config import REPO_ROOT

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


@contextlib.contextmanager
def _lock(uri: str) -> Iterator[None]:
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri[len("sqlite:///") :] + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _flatten(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _local_store_dir(uri: str) -> Path | None:
    """The folder of a SQLite store that lies in the working directory (the default ``mlflow.db``)."""
    if not uri.startswith("sqlite:///"):
        return None
    folder = Path(uri[len("sqlite:///") :]).resolve().parent
    return folder if folder == Path.cwd().resolve() else None


def _experiment(mlflow, name: str, uri: str) -> str:
    """The experiment's id, created on first use.

    Artifacts go next to the SQLite store. For the default store in the working directory (the
    project) the experiment records the relative location ``mlruns/<name>``: MLflow itself would
    record an absolute path, so that a copied or moved project (its ``mlflow.db`` included) would
    go on writing into the original's ``mlruns/``. Jobs, like ``mlflow ui``, run in the project.
    """
    exp = mlflow.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else None
    if uri.startswith("sqlite:///"):
        store_dir = Path(uri[len("sqlite:///") :]).parent
        if exp_id is None:
            exp_id = mlflow.create_experiment(name, artifact_location=(store_dir / "mlruns" / name).resolve().as_uri())
        if _local_store_dir(uri) is not None:
            relative = f"mlruns/{name}"
            if (exp.artifact_location if exp is not None else None) != relative:
                import sqlite3

                # MLflow resolves every local location to an absolute one; only the table keeps it relative.
                with contextlib.closing(sqlite3.connect(uri[len("sqlite:///") :])) as db, db:
                    db.execute(
                        "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (relative, int(exp_id))
                    )
        return exp_id
    return exp_id if exp_id is not None else mlflow.create_experiment(name)


def is_timing(key: str) -> bool:
    """Whether a stats key holds a wall-clock figure (``seconds``, ``load_seconds``, ``heads_per_second``, ...)."""
    return key == "seconds" or key.endswith("_seconds") or "seconds_per_" in key or key.endswith("_per_second")


def split_timings(stats: dict) -> tuple[dict, dict]:
    """``stats`` without its wall-clock figures, and those figures (nested dicts split alike).

    Artefacts (stats JSONs, metrics DVC hashes) take the first: the same inputs give the same
    bytes on any machine and load. The timings go to the job's log and to MLflow.
    """
    kept: dict = {}
    timings: dict = {}
    for key, value in stats.items():
        if is_timing(str(key)):
            timings[key] = value
        elif isinstance(value, dict):
            kept[key], sub = split_timings(value)
            if sub:
                timings[key] = sub
        else:
            kept[key] = value
    return kept, timings


def enabled(params: dict | None) -> bool:
    return bool(((params or {}).get("tracking") or {}).get("enabled", True))


def log_run(
    stage: str,
    params: dict | None,
    *,
    shard: str | None = None,
    metrics: dict | None = None,
    run_params: dict | None = None,
    artifacts: list[str | os.PathLike] | None = None,
    step_metrics: list[tuple[int, dict]] | None = None,
    tags: dict | None = None,
) -> str | None:
    """Log one finished stage run; returns the run id (None when tracking is off).

    ``metrics`` may be nested (flattened with dots); non-numeric values are skipped.
    ``step_metrics`` is a list of ``(step, {name: value})`` for per-epoch curves.
    """
    if not enabled(params):
        return None
    from .offline import configure

    configure()
    import mlflow

    uri = tracking_uri(params)
    experiment = ((params or {}).get("tracking") or {}).get("experiment", "vggheads")
    flat_metrics: dict = {}
    _flatten("", metrics or {}, flat_metrics)
    numeric = {k: float(v) for k, v in flat_metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    flat_params: dict = {}
    _flatten("", run_params or {}, flat_params)
    with _lock(uri):
        mlflow.set_tracking_uri(uri)
        exp_id = _experiment(mlflow, experiment, uri)
        run_name = stage if shard is None else f"{stage}/{shard}"
        all_tags = {"vggheads.stage": stage, "vggheads.shard": shard or "all", "mlflow.source.git.commit": git_commit()}
        all_tags.update(tags or {})
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=all_tags) as run:
            if flat_params:
                # MLflow caps a param value at 6000 characters.
                mlflow.log_params({k: str(v)[:6000] for k, v in flat_params.items()})
            if numeric:
                mlflow.log_metrics(numeric)
            for step, values in step_metrics or []:
                mlflow.log_metrics({k: float(v) for k, v in values.items()}, step=step)
            for path in artifacts or []:
                path = Path(path)
                if path.is_dir():
                    mlflow.log_artifacts(str(path), artifact_path=path.name)
                elif path.exists():
                    mlflow.log_artifact(str(path))
            log.info("logged %s to MLflow run %s (%s)", run_name, run.info.run_id, uri)
            return run.info.run_id
