"""Stand-ins for the released model: files with exactly its inputs and outputs, wrapping this
project's network, so the official backend can be tested, benchmarked and tried without the real
``vgg_heads_l.trcd`` / ``vgg_heads_l.onnx``.

Contract (``head_detector`` v0.1.0): input ``(B, 3, S, S)`` float32 in [0, 1] (letterboxed, RGB);
outputs ``boxes [B, A, 4]`` (xyxy, canvas pixels), ``scores [B, A, 1]``, ``params [B, A, 413]``
(paper order; ``v = s R v + t`` in canvas pixels). This project's network predicts the same
things (``(B, 5 + P, A)``: xywh, score, the P active parameters): the wrapper transposes it,
turns xywh into xyxy and pads the parameters to 413 with zeros, as the released L model pads its
128 shape / 64 expression components.

    vggheads release standin --model data/model --out standin.trcd      # or standin.onnx
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..core.param_layout import N_EXPR, N_SHAPE

# extra file of a TorchScript stand-in: its input size (the released file has none: 640)
SIZE_KEY = "vggheads_image_size"


class OfficialContract(nn.Module):
    """This project's HeadDetectionModel behind the released model's inputs and outputs."""

    def __init__(self, model, fuse: bool = True):
        super().__init__()
        m = deepcopy(model).float().cpu().eval()
        if fuse and hasattr(m, "fuse"):
            m = m.fuse(verbose=False)
        head = m.model[-1]
        head.export, head.format = True, "onnx"  # the plain inference tensor, as the ONNX export does
        self.model = m
        self.n_shape, self.n_expr = int(model.arch.n_shape), int(model.arch.n_expr)
        self.nc = len(model.arch.names)

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        y = out[0] if isinstance(out, (tuple, list)) else out  # (B, 4 + nc + P, A)
        y = y.transpose(1, 2)  # (B, A, 4 + nc + P)
        xy, wh = y[..., 0:2], y[..., 2:4]
        boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
        scores = y[..., 4:5]
        p = y[..., 4 + self.nc :]
        ns, ne = self.n_shape, self.n_expr
        params = torch.cat(
            [F.pad(p[..., :ns], (0, N_SHAPE - ns)), F.pad(p[..., ns : ns + ne], (0, N_EXPR - ne)), p[..., ns + ne :]],
            -1,
        )
        return boxes, scores, params


def build_standin(model, out: str | Path, imgsz: int | None = None, dynamic_batch: bool = False) -> Path:
    """Write a stand-in of ``model`` (a HeadDetectionModel, or a path to this project's weights) as
    TorchScript (``.trcd``/``.pt``/``.ts``) or ONNX (``.onnx``), by the suffix of ``out``; atomic."""
    from ..io import atomic_path

    if isinstance(model, (str, Path)):
        from ..model.checkpoint import load_model

        model = load_model(model)
    out = Path(out)
    imgsz = int(imgsz or model.arch.imgsz)
    wrapper = OfficialContract(model).eval()
    x = torch.zeros(1, 3, imgsz, imgsz)
    with atomic_path(out) as tmp, torch.no_grad():
        if out.suffix.lower() == ".onnx":
            torch.onnx.export(
                wrapper,
                (x,),
                str(tmp),
                dynamo=False,
                opset_version=17,
                input_names=["images"],
                output_names=["boxes", "scores", "params"],
                dynamic_axes={
                    "images": {0: "batch"},
                    "boxes": {0: "batch"},
                    "scores": {0: "batch"},
                    "params": {0: "batch"},
                }
                if dynamic_batch
                else None,
            )
        else:
            traced = torch.jit.trace(wrapper, (x,), check_trace=False)
            # the traced graph has the anchors of this size baked in: say so for the loader
            torch.jit.save(traced, str(tmp), _extra_files={SIZE_KEY: str(imgsz)})
    return out
