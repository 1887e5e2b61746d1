"""``HeadDetectionModel``: an ultralytics YOLO detector (YOLO11 or YOLOv8, sizes n/s/m/l) whose last
layer is :class:`~vggheads.model.head.FlameDetect`; it creates its own loss (``init_criterion``).
"""

from __future__ import annotations

from torch import nn

from ..offline import import_ultralytics

import_ultralytics()

from ultralytics.nn.tasks import DetectionModel, yaml_model_load  # noqa: E402
from ultralytics.utils.torch_utils import initialize_weights  # noqa: E402

from .config import ModelConfig  # noqa: E402
from .head import FlameDetect  # noqa: E402

YAML_KEY = "vggheads"  # where the architecture record sits in the ultralytics model YAML
# BatchNorm running-statistics momentum. ultralytics uses 0.03, made for 100k+ steps; the short CPU
# runs here take a few hundred steps at a high learning rate, and with 0.03 the running statistics
# lag the weights so far that the eval-mode network diverges (validation losses of 1e6) mid-run.
BN_MOMENTUM = 0.1


class HeadDetectionModel(DetectionModel):
    """One-stage multi-head 3D detector: boxes, head scores, FLAME parameters per anchor.

    Built from the ultralytics YAML of ``cfg.base``/``cfg.size`` (no pretrained weights), with the
    Detect layer replaced by ``FlameDetect``. ``cfg`` may be a :class:`ModelConfig`, its dict, or
    an ultralytics model YAML dict carrying it under ``"vggheads"`` (how a resumed run rebuilds it).

    Example::

        model = HeadDetectionModel(ModelConfig(size="n", n_shape=32, n_expr=16, imgsz=160,
                                               head_model="data/headmodel/head_model.npz"))
        boxes_scores_params, raw = model.eval()(images)   # (B, 5 + P, A)
    """

    def __init__(self, cfg: ModelConfig | dict, ch: int = 3, nc: int | None = None, verbose: bool = False):
        if isinstance(cfg, dict):
            cfg = ModelConfig.from_dict(cfg.get(YAML_KEY, cfg))
        yaml = yaml_model_load(cfg.ultralytics_yaml)
        yaml["nc"] = len(cfg.names)
        yaml[YAML_KEY] = cfg.to_dict()
        super().__init__(yaml, ch=ch, nc=len(cfg.names), verbose=False)
        old = self.model[-1]
        chs = tuple(seq[0].conv.in_channels for seq in old.cv2)
        head = FlameDetect(
            nc=old.nc,
            n_shape=cfg.n_shape,
            n_expr=cfg.n_expr,
            flame_channels=cfg.flame_channels,
            flame_depth=cfg.flame_depth,
            reg_max=old.reg_max,
            legacy=old.legacy,
            ch=chs,
        )
        head.i, head.f, head.type = old.i, old.f, f"{FlameDetect.__module__}.{FlameDetect.__name__}"
        head.np = sum(p.numel() for p in head.parameters())
        head.inplace = self.inplace
        head.stride = old.stride
        self.model[-1] = head
        head.bias_init()
        initialize_weights(head)
        for m in self.modules():  # ultralytics sets 0.03; see BN_MOMENTUM
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = BN_MOMENTUM
        self.names = dict(cfg.names)
        self.loss_settings = None  # set by the trainer (vggheads.model.loss.LossSettings)
        self.args = None  # ultralytics' hyperparameters, set by the trainer (the loss reads its own settings)
        if verbose:
            self.info()

    @property
    def arch(self) -> ModelConfig:
        return ModelConfig.from_dict(self.yaml[YAML_KEY])

    def init_criterion(self):
        from .loss import HeadLoss

        return HeadLoss(self)


def load_detector_weights(model: HeadDetectionModel, path) -> int:
    """Start ``model`` from a trained ultralytics head detector (e.g. the pipeline's
    ``data/detector/head_detector.pt``): every tensor whose name and shape agree (backbone, neck,
    box and class branches) is copied; the FLAME branches keep their initialisation. The paper
    starts from a COCO-trained detector in the same way. Returns the number of tensors copied;
    a checkpoint of another architecture (nothing in common) is an error.
    """
    from pathlib import Path

    import torch

    from ..errors import InputError, MissingWeightsError

    path = Path(path)
    if not path.exists():
        raise MissingWeightsError(
            "detector weights to start the model from",
            path,
            "train one with the train_head_detector rule, or set train.init to scratch",
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    source = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else ckpt
    if source is None or not hasattr(source, "state_dict"):
        raise InputError(f"{path}: not an ultralytics checkpoint (no 'ema' or 'model' module)")
    theirs = {k: v.float() for k, v in source.state_dict().items()}
    ours = model.state_dict()
    same = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    if len(same) < len(theirs) // 2:
        raise InputError(
            f"{path}: only {len(same)} of its {len(theirs)} tensors fit the model "
            f"({model.arch.ultralytics_yaml}); train.init needs a detector of the same architecture"
        )
    model.load_state_dict(same, strict=False)
    return len(same)
