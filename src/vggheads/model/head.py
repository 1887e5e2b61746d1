"""``FlameDetect``: ultralytics' Detect head plus the paper's FLAME branches at every pyramid level.

Per level, next to Detect's box (DFL) and class branches, a FLAME stem (a depthwise 3x3 + 1x1 block,
like one block of YOLO11's class branch) feeds six branches, one per parameter group (paper section
3): shape, expression, jaw, rotation (6D), translation and scale, each a 1x1 hidden conv (a quarter
of the stem's width) and a 1x1 output conv. The six hidden convs run as one conv (the same
arithmetic as six separate ones, one kernel launch). The paper gives every branch two RepVGG blocks
of its own on YOLO-NAS; the shared, lighter stem keeps the CPU cost of the FLAME branches near the
15 % budget of issue 6 (``benchmarks/bench_model.py``: two depthwise blocks and half-width branches
cost about 20 %).

Activations (paper section 3, bounded): shape and expression ``3 tanh``; translation
``xy = (anchor centre + b(raw)) * stride`` pixels, ``z = b(raw) * stride``, with
``b(x) = 16 tanh(x / 16)`` (within 16 strides of the anchor, the reach of the box branch's DFL);
scale ``exp(l(raw)) / 0.05 * stride`` with ``l`` a tanh squashing onto [-2.5, 2] (pixels per model
unit: a 0.16 m wide head spans 3.2 strides at raw 0, between 0.26 and 24 strides at the bounds:
the heads a pyramid level is assigned span 1-20 of its strides); jaw and 6D rotation raw, the
rotation branch starting at the frontal pose. The paper's unbounded ``raw + anchor`` and
``exp(raw)`` let one wild anchor of an unconverged network decode to a head tens of thousands of
pixels wide; the soft bounds equal the paper's activations near zero (slope 1) and keep every
decoded head within a few image sizes of its anchor whatever the weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..offline import import_ultralytics

import_ultralytics()

from ultralytics.nn.modules.conv import Conv, DWConv  # noqa: E402
from ultralytics.nn.modules.head import Detect  # noqa: E402

from ..geometry.rotations import FRONTAL  # noqa: E402

SCALE_PRIOR = 0.05  # the paper's scale = exp(x) / 0.05 * stride
LOG_SCALE_RANGE = (-2.5, 2.0)  # log scale about the prior: a 0.16 m head between 0.26 and 24 strides wide
OFFSET_BOUND = 16.0  # translation within 16 strides of the anchor (the box branch's reach, reg_max)


def soft_bound(x: Tensor, bound: float) -> Tensor:
    """``bound * tanh(x / bound)``: the identity near 0, never beyond +/- bound."""
    return bound * torch.tanh(x / bound)


def soft_bound_inverse(y: Tensor, bound: float) -> Tensor:
    """The raw value that :func:`soft_bound` maps to ``y`` (``|y| < bound``)."""
    return bound * torch.atanh(y / bound)


def soft_range(x: Tensor, lo: float, hi: float) -> Tensor:
    """A tanh squashing of ``x`` onto (lo, hi): slope 1 at the range's middle, close to the identity near 0."""
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return mid + soft_bound(x - mid, half)


def soft_range_inverse(y: Tensor, lo: float, hi: float) -> Tensor:
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return mid + soft_bound_inverse(y - mid, half)


def branch_sizes(n_shape: int, n_expr: int) -> dict[str, int]:
    """Output channels per FLAME branch, in the order of the active parameter layout."""
    return {"shape": n_shape, "expression": n_expr, "jaw": 3, "rotation": 6, "translation": 3, "scale": 1}


class FlameDetect(Detect):
    """Detect head with FLAME branches; outputs boxes, head scores and the active FLAME parameters.

    Training: a dict with Detect's ``boxes``, ``scores``, ``feats`` plus ``flame`` ``(B, P, A)`` raw
    values. Inference: ``(B, 4 + nc + P, A)``: xywh box in input pixels, sigmoid scores, and the
    activated parameters in input pixels (P = n_shape + n_expr + 13; see :func:`vggheads.model.flame.pad_params`).

    Example::

        head = FlameDetect(nc=1, n_shape=32, n_expr=16, ch=(64, 128, 256))
    """

    def __init__(
        self,
        nc: int = 1,
        n_shape: int = 128,
        n_expr: int = 64,
        flame_channels: int | None = None,
        reg_max: int = 16,
        legacy: bool = False,
        ch: tuple[int, ...] = (),
        flame_depth: int = 0,
    ):
        self.legacy = legacy  # Detect builds its class branch from this (YOLOv8 style when True)
        super().__init__(nc=nc, reg_max=reg_max, end2end=False, ch=ch)
        self.n_shape, self.n_expr = int(n_shape), int(n_expr)
        self.sizes = branch_sizes(self.n_shape, self.n_expr)
        self.n_flame = sum(self.sizes.values())
        c = int(flame_channels or ch[0])
        self.branch_channels = cb = max(c // 4, 16)
        self.flame_stem = nn.ModuleList(
            nn.Sequential(DWConv(x, x, 3), *(Conv(x, x, 3) for _ in range(int(flame_depth))), Conv(x, c, 1)) for x in ch
        )
        self.flame_hidden = nn.ModuleList(Conv(c, cb * len(self.sizes), 1) for _ in ch)  # the six branches' 1x1
        self.flame = nn.ModuleDict(
            {name: nn.ModuleList(nn.Conv2d(cb, n, 1) for _ in ch) for name, n in self.sizes.items()}
        )

    def forward_head(self, x: list[Tensor], box_head=None, cls_head=None) -> dict[str, Tensor]:
        preds = super().forward_head(x, box_head, cls_head)
        if not preds:
            return preds
        bs = x[0].shape[0]
        levels = []
        for i in range(self.nl):
            hidden = self.flame_hidden[i](self.flame_stem[i](x[i])).split(self.branch_channels, 1)
            out = [self.flame[name][i](h) for name, h in zip(self.sizes, hidden)]
            levels.append(torch.cat(out, 1).view(bs, self.n_flame, -1))
        preds["flame"] = torch.cat(levels, 2)
        return preds

    def _inference(self, x: dict[str, Tensor]) -> Tensor:
        det = super()._inference(x)  # also (re)computes self.anchors, self.strides for this input size
        return torch.cat([det, self.decode_flame(x["flame"], self.anchors, self.strides)], 1)

    def decode_flame(self, raw: Tensor, anchors: Tensor, strides: Tensor) -> Tensor:
        """Raw ``(B, P, A)`` -> activated parameters ``(B, P, A)`` in input pixels.

        anchors: ``(2, A)`` cell centres in grid units; strides: ``(1, A)``.
        """
        k = self.n_shape + self.n_expr
        shape_expr = 3.0 * torch.tanh(raw[:, :k])
        jaw_rot = raw[:, k : k + 9]
        txy = (soft_bound(raw[:, k + 9 : k + 11], OFFSET_BOUND) + anchors) * strides
        tz = soft_bound(raw[:, k + 11 : k + 12], OFFSET_BOUND) * strides
        scale = torch.exp(soft_range(raw[:, k + 12 : k + 13], *LOG_SCALE_RANGE)) / SCALE_PRIOR * strides
        return torch.cat([shape_expr, jaw_rot, txy, tz, scale], 1)

    def encode_flame(self, active: Tensor, anchors: Tensor, strides: Tensor) -> Tensor:
        """The inverse of :meth:`decode_flame`: activated ``(B, P, A)`` -> raw ``(B, P, A)`` (for tests and
        target checks; values must lie inside the activations' bounds)."""
        k = self.n_shape + self.n_expr
        return torch.cat(
            [
                torch.atanh(active[:, :k] / 3.0),
                active[:, k : k + 9],
                soft_bound_inverse(active[:, k + 9 : k + 11] / strides - anchors, OFFSET_BOUND),
                soft_bound_inverse(active[:, k + 11 : k + 12] / strides, OFFSET_BOUND),
                soft_range_inverse(torch.log(active[:, k + 12 : k + 13] * SCALE_PRIOR / strides), *LOG_SCALE_RANGE),
            ],
            1,
        )

    def bias_init(self):
        """Detect's box/class priors; FLAME outputs start near zero with the rotation at the frontal pose."""
        super().bias_init()
        frontal = torch.tensor(FRONTAL, dtype=torch.float32)
        rot6d = torch.cat([frontal[:, 0], frontal[:, 1]])
        for name, levels in self.flame.items():
            for out in levels:
                nn.init.normal_(out.weight, std=0.01)
                nn.init.zeros_(out.bias)
                if name == "rotation":
                    out.bias.data.copy_(rot6d)
