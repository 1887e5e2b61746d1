"""The offline configuration is safe when many jobs of a fresh project start at once."""

from __future__ import annotations

import os
import subprocess
import sys


def test_jobs_starting_together_in_a_fresh_project_all_configure(tmp_path):
    """Each process writes ultralytics' font and settings through its own temporary file: twelve jobs
    starting at once (a `snakemake --cores N` of a fresh clone) all start, and leave one font and
    one settings file."""
    cfg = tmp_path / "ultralytics"
    env = {**os.environ, "YOLO_CONFIG_DIR": str(cfg)}
    code = "from vggheads.offline import configure; configure()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True) for _ in range(12)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(e for e in errors if e)
    files = sorted(p.name for p in (cfg / "Ultralytics").iterdir())
    assert files == ["Arial.ttf", "settings.json"], files
