"""``HeadTrainer``: ultralytics' detection trainer with its hooks pointed at the parquet manifests, the
FLAME model, its loss and validator.

The generic loop is ultralytics' own (AdamW, cosine schedule with warm-up, EMA, gradient
clipping, ``last.pt``/``best.pt`` checkpoints, ``resume``, ``results.csv``). Overridden hooks:
``get_dataset`` (the manifests instead of a dataset YAML), ``build_dataset`` (:class:`HeadDataset`),
``get_model`` (:class:`HeadDetectionModel`), ``set_model_attributes`` (the loss settings),
``get_validator`` (:class:`HeadValidator`) and ``preprocess_batch`` (multi-scale off: the FLAME
targets are in input pixels).
"""

from __future__ import annotations

import math
from copy import copy
from pathlib import Path

from ..offline import import_ultralytics

import_ultralytics()

from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402
from ultralytics.utils import DEFAULT_CFG  # noqa: E402

from .config import ModelConfig  # noqa: E402
from .dataset import HeadDataset  # noqa: E402
from .loss import LossSettings  # noqa: E402
from .network import HeadDetectionModel  # noqa: E402
from .validator import HeadValidator, validate  # noqa: E402

EMA_TAU = 2000  # ultralytics' EMA warm-up: decay = ema_decay * (1 - exp(-updates / tau))


class HeadTrainer(DetectionTrainer):
    """Train a :class:`HeadDetectionModel` on the manifests.

    ``overrides`` are ultralytics trainer arguments (``epochs``, ``batch``, ``lr0``, ``project``,
    ``name``, ``resume``...); the model, the manifests and the loss come as their own arguments.

    Example::

        trainer = HeadTrainer(arch, "data/manifest/images.parquet", "data/manifest/heads.parquet",
                              LossSettings(), overrides={"epochs": 3, "imgsz": 160, "device": "cpu"})
        trainer.train()   # -> trainer.best, trainer.last, trainer.csv
    """

    def __init__(self, arch: ModelConfig, images: str | Path, heads: str | Path, loss: LossSettings | None = None,
                 overrides: dict | None = None, max_images: int | None = None, ema_decay: float = 0.9999,
                 _callbacks=None):
        self.arch, self.images, self.heads = arch, str(images), str(heads)
        self.loss_settings = loss or LossSettings()
        self.max_images, self.ema_decay = max_images, float(ema_decay)
        overrides = dict(overrides or {})
        overrides.update({"task": "detect", "data": self.images, "single_cls": False, "fliplr": 0.0, "flipud": 0.0,
                          "mosaic": 0.0, "mixup": 0.0, "cutmix": 0.0, "close_mosaic": 0, "multi_scale": 0.0,
                          "rect": False, "box": self.loss_settings.iou, "cls": self.loss_settings.cls,
                          "dfl": self.loss_settings.dfl})
        overrides.setdefault("model", f"vggheads-{arch.ultralytics_yaml}")
        super().__init__(DEFAULT_CFG, overrides, _callbacks)
        self.add_callback("on_pretrain_routine_end", _set_ema_decay)
        self.val_on_train = False

    def get_dataset(self) -> dict:
        from .dataset import load_manifest

        val = "val"
        if not load_manifest(self.images, self.heads, "val", max_images=1):
            val = "train"  # a tiny manifest may hold no validation image: validate on the training images
            self.val_on_train = True
        return {"train": "train", "val": val, "nc": len(self.arch.names), "names": self.arch.names, "channels": 3}

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None) -> HeadDataset:
        split = img_path  # get_dataset maps the data keys to manifest splits
        return HeadDataset(self.images, self.heads, split, imgsz=self.args.imgsz, augment=mode == "train",
                           hyp=self.args, max_images=self.max_images if mode == "train" else None, seed=self.args.seed)

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> HeadDetectionModel:
        model = HeadDetectionModel(cfg if isinstance(cfg, dict) else self.arch, verbose=False)
        if weights:
            model.load(weights, verbose=False)
        return model

    def set_model_attributes(self):
        super().set_model_attributes()
        self.model.loss_settings = self.loss_settings

    def get_validator(self) -> HeadValidator:
        return HeadValidator(self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks)

    def preprocess_batch(self, batch: dict) -> dict:
        for k, v in batch.items():
            if hasattr(v, "to"):
                batch[k] = v.to(self.device, non_blocking=self.device.type not in {"cpu", "mps"})
        batch["img"] = batch["img"].float() / 255
        return batch

    def final_eval(self):
        """Strip the optimiser from the checkpoints and validate ``best.pt`` (ultralytics' own final
        validation goes through a dataset YAML, which the manifests are not)."""
        from ultralytics.nn.tasks import load_checkpoint
        from ultralytics.utils.torch_utils import strip_optimizer

        ckpt = strip_optimizer(self.last) if self.last.exists() else {}
        if not self.best.exists():
            return
        strip_optimizer(self.best, updates={"train_results": ckpt.get("train_results")})
        model, _ = load_checkpoint(self.best)
        self.metrics = validate(model, self.test_loader.dataset, batch_size=max(self.batch_size, 1),
                                conf=self.validator.args.conf, iou=self.args.iou, device=str(self.device),
                                save_dir=self.save_dir)
        self.metrics.pop("fitness", None)

    def plot_training_labels(self):  # ultralytics' label plots assume its YOLO label files
        return None

    def plot_training_samples(self, batch, ni):
        return None


def _set_ema_decay(trainer: HeadTrainer) -> None:
    """Apply train.ema_decay (ultralytics builds its EMA with a fixed 0.9999); keeps a resumed EMA's state."""
    decay = trainer.ema_decay
    trainer.ema.decay = lambda x: decay * (1 - math.exp(-x / EMA_TAU))
