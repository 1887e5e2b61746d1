"""benchmarks/gpu_check.py is the one script a lent GPU machine runs: its train and predict sections
are checked here on the CPU (--cpu-smoke), so a GPU session does not discover a broken script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_its_sections_on_the_cpu(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["train"]["steps"] >= 4 and figures["train"]["heldout_ap50"] is not None
    assert figures["predict"]["n_multitask_ms"] > 0 and figures["predict"]["n_ratio"] > 0
