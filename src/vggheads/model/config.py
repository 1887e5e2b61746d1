"""The model's architecture record: what is needed to rebuild a trained network from its weights.

Saved next to the weights as ``model.json`` (``vggheads.model.checkpoint.save_model``) and inside the
ultralytics model YAML (key ``vggheads``) so a resumed run rebuilds the same network.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.param_layout import N_EXPR, N_JAW, N_ROT6D, N_SCALE, N_SHAPE, N_TRANSLATION

BASES = ("yolo11", "yolov8")  # ultralytics families whose YAML we build the backbone + neck from
SIZES = ("n", "s", "m", "l")  # ultralytics scales (paper Table 9 compares S/M/L of YOLO-NAS)
FORMAT_VERSION = 1
PAD_VALUE = 127  # letterbox pad (paper section 5)


@dataclass
class ModelConfig:
    """Architecture of a :class:`~vggheads.model.network.HeadDetectionModel`.

    Example::

        cfg = ModelConfig(base="yolo11", size="n", n_shape=32, n_expr=16, imgsz=160)
        model = HeadDetectionModel(cfg)
    """

    base: str = "yolo11"
    size: str = "n"
    n_shape: int = 128  # shape components predicted; the rest of the 300 are zeros (paper L: 128)
    n_expr: int = 64  # expression components predicted; the rest of the 100 are zeros (paper L: 64)
    imgsz: int = 640  # square input side in pixels
    flame_channels: int | None = None  # FLAME tower width; None = width of the first pyramid level
    flame_depth: int = 0  # 3x3 conv blocks in each level's FLAME stem (the paper: 2-3 RepVGG blocks per branch)
    head_model: str = ""  # path of the head model the 3D losses and the decoding use
    head_model_sha256: str = ""  # its content hash, checked when a detector is loaded
    names: dict = field(default_factory=lambda: {0: "head"})
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        if self.base not in BASES:
            raise ValueError(f"model base must be one of {BASES}, got {self.base!r}")
        if self.size not in SIZES:
            raise ValueError(f"model size must be one of {SIZES}, got {self.size!r}")
        if not (1 <= self.n_shape <= N_SHAPE and 1 <= self.n_expr <= N_EXPR):
            raise ValueError(f"n_shape must be in 1..{N_SHAPE} and n_expr in 1..{N_EXPR}")
        if self.imgsz % 32:
            raise ValueError(f"imgsz must be a multiple of 32 (the largest stride), got {self.imgsz}")
        self.names = {int(k): str(v) for k, v in self.names.items()}

    @property
    def ultralytics_yaml(self) -> str:
        """The ultralytics model file this architecture starts from, e.g. ``yolo11n.yaml``."""
        return f"{self.base}{self.size}.yaml"

    @property
    def n_active(self) -> int:
        """Values the network predicts per anchor: active shape + expression, jaw, 6D rotation, translation, scale."""
        return self.n_shape + self.n_expr + N_JAW + N_ROT6D + N_TRANSLATION + N_SCALE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        version = int(data.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(f"model config format {version} is newer than this vggheads reads ({FORMAT_VERSION})")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_params(cls, params: dict, head_model: str | Path) -> "ModelConfig":
        """From the ``model:`` section of params.yaml and the head-model file."""
        m = params["model"]
        return cls(
            base=m["base"],
            size=m["size"],
            n_shape=m["n_shape"],
            n_expr=m["n_expr"],
            imgsz=m["imgsz"],
            flame_channels=m["flame_channels"],
            flame_depth=m["flame_depth"],
            head_model=str(head_model),
            head_model_sha256=file_sha256(head_model),
        )


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
