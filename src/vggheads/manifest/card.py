"""The dataset card: counts, filter yield, heads per image, yaw/pitch/roll and box-size histograms,
and, for head-mesh renders, how far the images agree with the scenes they were painted around.

Filled while the manifests stream (fixed bins, so memory does not grow with the dataset), then
written as one JSON (a DVC metric), CSV files (DVC plots) and PNG pictures (DVC plots, MLflow).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BOX_BINS = [0, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 1e9]  # sqrt(w h), pixels
MAX_HEADS_BIN = 20  # last bin: >= 20


class DatasetCard:
    def __init__(self, angle_bin_deg: float = 10.0):
        self.angle_bins = np.arange(-180.0, 180.0 + 1e-9, float(angle_bin_deg))
        if self.angle_bins[-1] < 180.0:
            self.angle_bins = np.append(self.angle_bins, 180.0)
        self.splits: dict[str, dict] = {}
        self.filter_reasons: dict[str, int] = {}
        self.rendered = 0
        self.filtered_out = 0
        self.kept_without_labels = 0
        self.heads_per_image = np.zeros(MAX_HEADS_BIN + 1, dtype=np.int64)
        self.angles = {k: np.zeros(len(self.angle_bins) - 1, dtype=np.int64) for k in ("yaw", "pitch", "roll")}
        self.box_size = np.zeros(len(BOX_BINS) - 1, dtype=np.int64)
        self.labellers: dict[str, int] = {}
        self.shards: list[str] = []
        self.agreement: dict | None = None  # head-mesh renders: see add_agreement

    def add_shard(
        self,
        shard: str,
        split: str,
        rendered: int,
        reasons: dict[str, int],
        kept_without_labels: int,
        heads_per_image: np.ndarray,
        yaw,
        pitch,
        roll,
        boxes: np.ndarray,
        labellers: list[str],
    ) -> None:
        """One shard: ``heads_per_image`` of its manifest images, per-head angles and xyxy boxes."""
        s = self.splits.setdefault(split, {"shards": 0, "images": 0, "heads": 0})
        s["shards"] += 1
        s["images"] += int(len(heads_per_image))
        s["heads"] += int(np.sum(heads_per_image))
        self.shards.append(shard)
        self.rendered += int(rendered)
        for k, v in reasons.items():
            if v:
                self.filter_reasons[k] = self.filter_reasons.get(k, 0) + int(v)
                self.filtered_out += int(v)
        self.kept_without_labels += int(kept_without_labels)
        self.heads_per_image += np.bincount(
            np.minimum(np.asarray(heads_per_image, dtype=np.int64), MAX_HEADS_BIN), minlength=MAX_HEADS_BIN + 1
        )
        for key, values in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
            self.angles[key] += np.histogram(np.asarray(values, dtype=np.float64), self.angle_bins)[0]
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        size = np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))
        self.box_size += np.histogram(size, BOX_BINS)[0]
        for name in labellers:
            self.labellers[name] = self.labellers.get(name, 0) + 1

    def add_agreement(self, rows: list[dict]) -> None:
        """One shard's per-image agreement with its scenes (rows of the ``agreement`` table): histograms
        of F1, mean IoU and landmark NME over every measured image, kept or dropped."""
        from ..filtering.agreement import F1_BINS, NME_BINS

        a = self.agreement
        if a is None:
            a = self.agreement = {
                "images": 0,
                "agree": 0,
                "scene_heads": 0,
                "detected": 0,
                "matched": 0,
                "f1": np.zeros(len(F1_BINS) - 1, np.int64),
                "mean_iou": np.zeros(len(F1_BINS) - 1, np.int64),
                "nme": np.zeros(len(NME_BINS) - 1, np.int64),
                "nme_images": 0,
                "sums": {},
            }
        for r in rows:
            a["images"] += 1
            a["agree"] += int(bool(r["agree"]))
            for k in ("scene_heads", "detected", "matched"):
                a[k] += int(r[k])
            for k in ("f1", "mean_iou", "nme", "recall", "precision"):
                v = r[k]
                if v is not None and np.isfinite(v):
                    a["sums"][k] = a["sums"].get(k, [0.0, 0])
                    a["sums"][k][0] += float(v)
                    a["sums"][k][1] += 1
        f1 = np.asarray([r["f1"] for r in rows], np.float64)
        iou = np.asarray([r["mean_iou"] for r in rows], np.float64)
        nme = np.asarray([r["nme"] for r in rows], np.float64)
        a["f1"] += np.histogram(f1[np.isfinite(f1)], F1_BINS)[0]
        a["mean_iou"] += np.histogram(iou[np.isfinite(iou)], F1_BINS)[0]
        a["nme"] += np.histogram(nme[np.isfinite(nme)], NME_BINS)[0]
        a["nme_images"] += int(np.isfinite(nme).sum())

    def _agreement_dict(self) -> dict | None:
        from ..filtering.agreement import F1_BINS, NME_BINS

        a = self.agreement
        if a is None:
            return None
        mean = lambda k: round(a["sums"][k][0] / a["sums"][k][1], 4) if a["sums"].get(k, [0, 0])[1] else None
        return {
            "images": a["images"],
            "agree": a["agree"],
            "scene_heads": a["scene_heads"],
            "detected": a["detected"],
            "matched": a["matched"],
            "mean_f1": mean("f1"),
            "mean_recall": mean("recall"),
            "mean_precision": mean("precision"),
            "mean_iou": mean("mean_iou"),
            "mean_nme_pct": mean("nme"),
            "nme_images": a["nme_images"],
            "histograms": {
                "f1": {"bins": F1_BINS[:-1], "counts": a["f1"].tolist()},
                "mean_iou": {"bins": F1_BINS[:-1], "counts": a["mean_iou"].tolist()},
                "nme_pct": {"bins": NME_BINS[:-1], "counts": a["nme"].tolist()},
            },
        }

    def to_dict(self) -> dict:
        images = sum(s["images"] for s in self.splits.values())
        heads = sum(s["heads"] for s in self.splits.values())
        hist = lambda counts, bins: {"bins": [float(b) for b in bins], "counts": counts.tolist()}
        return {
            "images": images,
            "heads": heads,
            "heads_per_image_mean": round(heads / images, 4) if images else 0.0,
            "rendered_images": self.rendered,
            "filter": {
                "kept": self.rendered - self.filtered_out,
                "dropped": self.filtered_out,
                "yield": round((self.rendered - self.filtered_out) / self.rendered, 4) if self.rendered else None,
                "reasons": dict(sorted(self.filter_reasons.items())),
                "kept_without_labelled_heads": self.kept_without_labels,
            },
            "splits": self.splits,
            "shards": len(self.shards),
            "labellers": self.labellers,
            "histograms": {
                "heads_per_image": {
                    "bins": list(range(MAX_HEADS_BIN)) + [f">={MAX_HEADS_BIN}"],
                    "counts": self.heads_per_image.tolist(),
                },
                "yaw_deg": hist(self.angles["yaw"], self.angle_bins),
                "pitch_deg": hist(self.angles["pitch"], self.angle_bins),
                "roll_deg": hist(self.angles["roll"], self.angle_bins),
                "box_size_px": {"bins": [float(b) for b in BOX_BINS[:-1]] + ["inf"], "counts": self.box_size.tolist()},
            },
            **({"agreement": self._agreement_dict()} if self.agreement is not None else {}),
        }

    def write_plots(self, directory: Path) -> list[Path]:
        """One CSV (DVC plots) and one PNG per histogram, plus the filter yield, into ``directory``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        angle_labels = [f"{a:g}" for a in self.angle_bins[:-1]]
        box_labels = [f"{b:g}" for b in BOX_BINS[:-1]]
        series = {
            "heads_per_image": (
                "heads",
                [str(i) for i in range(MAX_HEADS_BIN)] + [f">={MAX_HEADS_BIN}"],
                self.heads_per_image,
                "heads per image",
            ),
            "yaw": ("yaw_deg", angle_labels, self.angles["yaw"], "yaw (degrees, bin start)"),
            "pitch": ("pitch_deg", angle_labels, self.angles["pitch"], "pitch (degrees, bin start)"),
            "roll": ("roll_deg", angle_labels, self.angles["roll"], "roll (degrees, bin start)"),
            "box_size": ("box_size_px", box_labels, self.box_size, "head box sqrt(w h), pixels (bin start)"),
        }
        reasons = {"kept": self.rendered - self.filtered_out, **dict(sorted(self.filter_reasons.items()))}
        series["filter_yield"] = ("outcome", list(reasons), np.array(list(reasons.values())), "filter outcome")
        if self.agreement is not None:  # head-mesh renders: agreement of the images with their scenes
            from ..filtering.agreement import F1_BINS, NME_BINS

            f1_labels = [f"{b:g}" for b in F1_BINS[:-2]] + ["1"]
            series["agreement_f1"] = (
                "f1",
                f1_labels,
                self.agreement["f1"],
                "per image: F1 of detected vs scene heads (bin start)",
            )
            series["agreement_iou"] = (
                "mean_iou",
                f1_labels,
                self.agreement["mean_iou"],
                "per image: mean IoU of the scene heads (bin start)",
            )
            series["agreement_nme"] = (
                "nme_pct",
                [f"{b:g}" for b in NME_BINS[:-1]],
                self.agreement["nme"],
                "per image: labeller landmarks vs scene, NME % (bin start)",
            )
        for name, (xname, labels, counts, title) in series.items():
            csv = directory / f"{name}.csv"
            csv.write_text(f"{xname},count\n" + "".join(f"{x},{int(c)}\n" for x, c in zip(labels, counts)))
            fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
            ax.bar(range(len(counts)), counts, color="#4a7ab5")
            step = max(1, len(labels) // 12)
            ax.set_xticks(range(0, len(labels), step))
            ax.set_xticklabels(labels[::step], rotation=45 if len(labels) > 8 else 0, fontsize=7)
            ax.set_xlabel(title)
            ax.set_ylabel("count")
            fig.tight_layout()
            png = directory / f"{name}.png"
            fig.savefig(png)
            plt.close(fig)
            written += [csv, png]
        return written
