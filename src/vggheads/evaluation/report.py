"""Writing results: metrics JSON (DVC metrics), curves and error histograms (DVC plots: CSV + PNG),
and the markdown results table next to the paper's numbers (paper section 6, arXiv v3)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..core.metrics import NME_KEY, PITCH_KEY, POSE_MAE_KEY, ROLL_KEY, YAW_KEY
from ..io import atomic_path
from .types import BenchmarkResult

# The paper's numbers (v3). Keys are this project's metric names, in their units (``_pct``, ``_deg``;
# AP a fraction: the paper's 96.1 % is 0.961 here); None = not reported.
POSE_COLUMNS = (POSE_MAE_KEY, YAW_KEY, PITCH_KEY, ROLL_KEY)
PAPER: dict[str, dict] = {
    "aflw2000": {
        "source": "Tables 2 and 10",
        "columns": POSE_COLUMNS,
        "rows": {
            "VGGHeads": (3.76, 3.00, 4.91, 3.37),
            "6DRepNet": (3.61, 3.27, 4.58, 2.98),
            "DAD-3DNet": (3.66, 3.08, 4.76, 3.15),
            "img2pose": (3.91, 3.43, 5.03, 3.28),
            "RetinaFace": (6.22, 5.10, 9.64, 3.92),
            "3DDFA-V2": (7.56, 4.30, 8.48, 9.89),
            "SynergyNet": (3.35, None, None, None),
            "HopeNet": (6.16, None, None, None),
            "3DDFA": (7.39, None, None, None),
            "RingNet": (8.27, None, None, None),
            "Dlib": (13.29, None, None, None),
        },
    },
    "biwi": {
        "source": "Tables 2, 11 and 13",
        "columns": POSE_COLUMNS,
        "rows": {
            "VGGHeads": (3.79, 3.47, 5.24, 2.65),
            "6DRepNet": (3.78, 3.23, 5.32, 2.78),
            "DAD-3DNet": (3.98, 3.79, 5.24, 2.92),
            "img2pose": (3.79, 4.57, 3.55, 3.24),
            "RetinaFace": (4.49, 4.07, 6.42, 2.97),
            "3DDFA-V2": (8.81, 6.80, 12.08, 7.54),
            "MNN": (3.66, None, None, None),
            "WHENet": (3.81, None, None, None),
            "HopeNet": (4.90, None, None, None),
            "RingNet": (7.34, None, None, None),
            "PIXIE": (10.97, None, None, None),
            "Dlib": (12.25, None, None, None),
            "3DDFA": (19.07, None, None, None),
        },
    },
    "dad3dheads": {
        "source": "Table 5 (test set, 2,746 images)",
        "columns": (NME_KEY, "z5", "chamfer", "pose_error"),
        "rows": {
            "VGGHeads": (2.917, 0.933, 4.002, 0.179),
            "DAD-3DNet": (2.302, 0.954, 3.178, 0.138),
            "3DDFA-V2": (3.580, None, 6.170, 0.527),
            "RingNet": (8.757, 0.880, 5.166, 0.438),
        },
    },
    "wider": {
        "source": "Table 6 (val)",
        "columns": ("ap_easy", "ap_medium", "ap_hard"),
        "rows": {
            "VGGHeads": (0.563, 0.510, 0.292),
            "VGGHeads + WIDER fine-tune": (0.926, 0.889, 0.703),
            "RetinaFace": (0.946, 0.930, 0.804),
            "img2pose": (0.865, 0.829, 0.613),
        },
    },
    "fddb": {
        "source": "Table 6",
        "columns": ("ap50", "disc_tpr_at_1000fp"),
        "rows": {
            "VGGHeads": (0.961, None),
            "VGGHeads + WIDER fine-tune": (0.966, None),
            "RetinaFace": (0.962, None),
            "img2pose": (0.961, None),
        },
    },
    "synthetic_val": {
        "source": "Table 7, 'Full' (trained on the 10k hand-labelled subset; head-vertex NME; the paper's "
        "FR column is ambiguous)",
        "columns": (NME_KEY, "failure_rate", "ap50", "recall"),
        "rows": {"VGGHeads (10k subset)": (1.975, 0.122, None, None)},
    },
}

TITLES = {
    "aflw2000": "AFLW2000-3D head pose (MAE, degrees)",
    "biwi": "BIWI head pose (MAE, degrees)",
    "dad3dheads": "DAD-3DHeads",
    "wider": "WIDER FACE val (AP, a fraction)",
    "fddb": "FDDB",
    "synthetic_val": "Synthetic validation (this project's data)",
}
EXTRA_COLUMNS = {
    "aflw2000": (NME_KEY, "missed"),
    "biwi": ("missed",),
    "wider": ("images",),
    "fddb": ("ap_coco", "images"),
}


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"


def results_table(results: list[BenchmarkResult]) -> str:
    """Markdown: per benchmark, the systems measured here, then the paper's rows, then the protocol."""
    lines = [
        "# Results",
        "",
        "Measured by `vggheads evaluate`; paper rows are the numbers printed in VGGHeads (arXiv 2407.18245 v3). "
        "A measured row on a subset of a benchmark is not comparable with the paper's full-set numbers.",
        "",
    ]
    by_bench: dict[str, list[BenchmarkResult]] = {}
    for r in results:
        by_bench.setdefault(r.benchmark, []).append(r)
    for bench in [b for b in TITLES if b in by_bench] + [b for b in by_bench if b not in TITLES]:
        paper = PAPER.get(bench, {"columns": tuple(sorted(by_bench[bench][0].metrics)), "rows": {}, "source": ""})
        cols = tuple(paper["columns"]) + EXTRA_COLUMNS.get(bench, ())
        lines += [
            f"## {TITLES.get(bench, bench)}",
            "",
            "| system | source | " + " | ".join(cols) + " |",
            "|---|---|" + "---|" * len(cols),
        ]
        for r in by_bench[bench]:
            lines.append(f"| {r.system} | measured | " + " | ".join(_fmt(r.metrics.get(c)) for c in cols) + " |")
        for name, values in paper["rows"].items():
            cells = list(values) + [None] * (len(cols) - len(values))
            lines.append(f"| {name} | paper | " + " | ".join(_fmt(v) for v in cells) + " |")
        lines.append("")
        if paper.get("source"):
            lines.append(f"Paper: {paper['source']}.")
        for r in by_bench[bench]:
            if r.protocol:
                lines.append(f"Protocol ({r.system}): " + "; ".join(f"{k}: {v}" for k, v in r.protocol.items()) + ".")
        lines.append("")
    return "\n".join(lines)


def _write_csv(path: Path, columns: dict[str, list]) -> None:
    names = list(columns)
    n = max((len(v) for v in columns.values()), default=0)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for i in range(n):
            w.writerow([columns[k][i] if i < len(columns[k]) else "" for k in names])


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def write_plots(result: BenchmarkResult, directory: str | Path, png: bool = True) -> list[Path]:
    """Curves (PR, ROC) and error histograms of one result as CSV (+ PNG); returns the files."""
    directory = Path(directory)
    written = []
    stem = f"{result.benchmark}_{_slug(result.system)}"
    for name, columns in result.curves.items():
        path = directory / f"{stem}_{name}.csv"
        _write_csv(path, columns)
        written.append(path)
        if png:
            x, y = list(columns)[:2]
            written.append(
                _plot_curve(
                    directory / f"{stem}_{name}.png",
                    columns[x],
                    columns[y],
                    x,
                    y,
                    f"{result.benchmark} {name} ({result.system})",
                )
            )
    for key in ("err_mean_deg", NME_KEY, "pose_error", "chamfer"):
        values = [r[key] for r in result.records if r.get(key) is not None and np.isfinite(r[key])]
        if not values:
            continue
        path = directory / f"{stem}_{key}_errors.csv"
        _write_csv(path, {key: values})
        written.append(path)
        if png:
            written.append(
                _plot_histogram(
                    directory / f"{stem}_{key}_errors.png",
                    values,
                    key,
                    f"{result.benchmark} {key} ({result.system}, n={len(values)})",
                )
            )
    return written


def _plot_curve(path: Path, x, y, xlabel: str, ylabel: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=100)
    ax.plot(x, y)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def _plot_histogram(path: Path, values, xlabel: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=100)
    ax.hist(values, bins=min(50, max(5, len(values) // 3)))
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def write_report(results: list[BenchmarkResult], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(results_table(results) + "\n")
