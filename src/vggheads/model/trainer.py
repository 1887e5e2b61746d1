"""``HeadTrainer``: ultralytics' detection trainer with its hooks pointed at the parquet manifests, the
FLAME model, its loss and validator.

The generic loop is ultralytics' own (AdamW, cosine schedule with warm-up, EMA, gradient
clipping, ``last.pt``/``best.pt`` checkpoints, ``resume``, ``results.csv``). Overridden hooks:
``get_dataset`` (the manifests instead of a dataset YAML), ``build_dataset`` (:class:`HeadDataset`),
``get_model`` (:class:`HeadDetectionModel`), ``set_model_attributes`` (the loss settings),
``get_validator`` (:class:`HeadValidator`), ``preprocess_batch`` (multi-scale off: the FLAME
targets are in input pixels), ``get_dataloader`` (an epoch-seeded order) and the checkpoint hooks.

Same inputs, same weights:

- **Threads.** ultralytics sets torch's CPU threads to ``min(8, cpu_count - 1)`` when it picks the
  device, so the weights depended on the machine's core count (float sums run in another order).
  ``threads`` (the job's threads, e.g. Snakemake's ``{threads}``) is used instead, on any machine.
- **BatchNorm statistics that match the weights.** The running means and variances that eval mode
  uses are an exponential average over past training batches, taken while the weights moved; after
  a few hundred steps at a high learning rate they no longer describe the network, the eval-mode
  activations blow up and every anchor scores 1.0 (the validation classification loss jumped from 3
  to 17,845 between two epochs while the training loss stayed at 5). Before each validation (and so
  in every saved checkpoint) the EMA model's statistics are recomputed from ``bn_images`` training
  images with the current weights ("precise BN", Wu & Johnson 2021).
- **Resume = uninterrupted.** ultralytics' ``last.pt`` keeps only the EMA weights, in float16, and
  resumes the live weights from them; its data order and our augmentation streams restarted from
  epoch 0. Here each epoch's order and augmentations are functions of (seed, epoch, index), and
  ``resume.pt`` beside ``last.pt`` keeps the float32 live weights, EMA, optimizer and RNG states, so a
  run killed after epoch N and resumed produces the same weights as one that never stopped.
"""

from __future__ import annotations

import math
import random
from copy import copy
from pathlib import Path

import numpy as np
import torch

from ..offline import import_ultralytics

import_ultralytics()

from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402
from ultralytics.utils import DEFAULT_CFG  # noqa: E402

from .config import ModelConfig  # noqa: E402
from .dataset import HeadDataset  # noqa: E402
from .loss import LossSettings  # noqa: E402
from .network import HeadDetectionModel  # noqa: E402
from .validator import HeadValidator, validate  # noqa: E402

EMA_TAU = 2000  # ultralytics' EMA warm-up: decay = ema_decay * (1 - exp(-updates / tau)) (train.ema_tau)
RESUME_FILE = "resume.pt"  # beside last.pt: what exact resumption needs and last.pt does not keep


MIN_BN_IMAGES = 16  # fewer images underestimate the variances: an unseen input (a white image) then saturates


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, dataset, n_images: int, batch: int, device) -> int:
    """Recompute every BatchNorm's running statistics as the plain average over the first
    ``n_images`` of ``dataset`` (un-augmented), with the model's current weights. Returns the
    number of images used (0 leaves the model as it was: also when fewer than ``MIN_BN_IMAGES``
    are available, where variances from a handful of images are too small and a barely trained
    network scored 1.0 on a white image; the running averages are kept then)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    n = min(int(n_images), len(dataset))
    if not bns or n < MIN_BN_IMAGES:
        return 0
    was_training = model.training
    saved = [(m.momentum, m.training) for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    augment = getattr(dataset, "augment", False)
    dataset.augment = False
    try:
        for start in range(0, n, batch):
            items = [dataset[i] for i in range(start, min(start + batch, n))]
            if len(items) < 2 and start:  # a batch of one adds a degenerate variance
                break
            model(dataset.collate_fn(items)["img"].to(device).float() / 255)
    finally:
        dataset.augment = augment
        for m, (momentum, training) in zip(bns, saved):
            m.momentum = momentum
            m.train(training)
        model.train(was_training)
    return n


def set_training_threads(threads: int) -> None:
    """Run torch's CPU kernels on ``threads`` threads, and make ultralytics keep that number."""
    from ultralytics.utils import torch_utils

    threads = max(1, int(threads))
    torch_utils.NUM_THREADS = threads  # select_device() resets torch's threads to this
    torch.set_num_threads(threads)


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of the dataset that is a function of (seed, epoch) only: a resumed run sees the
    same order in epoch N as an uninterrupted one."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class EpochLoader(torch.utils.data.DataLoader):
    """A plain DataLoader with the two methods ultralytics' trainer calls on its InfiniteDataLoader."""

    def reset(self):
        return None

    def close(self):
        return None


class HeadTrainer(DetectionTrainer):
    """Train a :class:`HeadDetectionModel` on the manifests.

    ``overrides`` are ultralytics trainer arguments (``epochs``, ``batch``, ``lr0``, ``project``,
    ``name``, ``resume``...); the model, the manifests and the loss come as their own arguments.

    Example::

        trainer = HeadTrainer(arch, "data/manifest/images.parquet", "data/manifest/heads.parquet",
                              LossSettings(), overrides={"epochs": 3, "imgsz": 160, "device": "cpu"})
        trainer.train()   # -> trainer.best, trainer.last, trainer.csv
    """

    def __init__(
        self,
        arch: ModelConfig,
        images: str | Path,
        heads: str | Path,
        loss: LossSettings | None = None,
        overrides: dict | None = None,
        max_images: int | None = None,
        ema_decay: float = 0.9999,
        ema_tau: float = EMA_TAU,
        threads: int | None = None,
        init_weights: str | Path | None = None,
        bn_images: int = 0,
        crop: int | None = None,
        _callbacks=None,
    ):
        self.arch, self.images, self.heads = arch, str(images), str(heads)
        self.loss_settings = loss or LossSettings()
        self.max_images, self.ema_decay, self.ema_tau = max_images, float(ema_decay), float(ema_tau)
        self.init_weights = Path(init_weights) if init_weights else None
        self.bn_images = int(bn_images)
        self.crop = crop
        self.threads = int(threads or torch.get_num_threads())
        set_training_threads(self.threads)
        overrides = dict(overrides or {})
        overrides.update(
            {
                "task": "detect",
                "data": self.images,
                "single_cls": False,
                "fliplr": 0.0,
                "flipud": 0.0,
                "mosaic": 0.0,
                "mixup": 0.0,
                "cutmix": 0.0,
                "close_mosaic": 0,
                "multi_scale": 0.0,
                "rect": False,
                "box": self.loss_settings.iou,
                "cls": self.loss_settings.cls,
                "dfl": self.loss_settings.dfl,
            }
        )
        overrides.setdefault("model", f"vggheads-{arch.ultralytics_yaml}")
        super().__init__(DEFAULT_CFG, overrides, _callbacks)
        set_training_threads(self.threads)
        self.add_callback("on_pretrain_routine_end", _set_ema_decay)
        self.add_callback("on_train_epoch_start", _set_epoch)
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
        return HeadDataset(
            self.images,
            self.heads,
            split,
            imgsz=self.args.imgsz,
            augment=mode == "train",
            hyp=self.args,
            max_images=self.max_images if mode == "train" else None,
            seed=self.args.seed,
            crop=self.crop if mode == "train" else None,
        )

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """Train: an epoch-seeded order (:class:`EpochSampler`); val: the manifest's order. ``workers``
        (``train.workers``) loading processes: ultralytics sets 0 on a CPU; on a GPU they keep it fed. The
        batches are the same with any number: the order comes from the sampler and every augmentation from
        (seed, epoch, index), never from a worker's own random state."""
        dataset = self.build_dataset(dataset_path, mode, batch_size)
        sampler = EpochSampler(len(dataset), self.args.seed) if mode == "train" else None
        return EpochLoader(
            dataset,
            batch_size=min(batch_size, max(len(dataset), 1)),
            sampler=sampler,
            shuffle=False,
            num_workers=int(self.args.workers),
            collate_fn=dataset.collate_fn,
        )

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> HeadDetectionModel:
        model = HeadDetectionModel(cfg if isinstance(cfg, dict) else self.arch, verbose=False)
        if weights:
            model.load(weights, verbose=False)
        elif self.init_weights is not None:
            from .network import load_detector_weights

            load_detector_weights(model, self.init_weights)
        return model

    def validate(self):
        """Recalibrate the EMA model's BatchNorm statistics (see the module docstring), then validate."""
        if self.bn_images and self.ema is not None:
            recalibrate_batchnorm(self.ema.ema, self.train_loader.dataset, self.bn_images, self.batch_size, self.device)
        return super().validate()

    def save_model(self):
        """ultralytics' checkpoints, then ``resume.pt``: float32 live weights, EMA, optimizer and RNG states."""
        saved = super().save_model()
        if saved is False:
            return saved
        from ultralytics.utils.torch_utils import unwrap_model

        from ..io import atomic_path

        state = {
            "epoch": self.epoch,
            "model": unwrap_model(self.model).state_dict(),
            "ema": self.ema.ema.state_dict(),
            "updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }
        with atomic_path(self.wdir / RESUME_FILE) as tmp:
            torch.save(state, tmp)
        return saved

    def resume_training(self, ckpt):
        super().resume_training(ckpt)
        if ckpt is None or not self.resume:
            return
        from ultralytics.utils import LOGGER
        from ultralytics.utils.torch_utils import unwrap_model

        path = Path(self.args.resume if isinstance(self.args.resume, (str, Path)) else self.last).with_name(RESUME_FILE)
        state = torch.load(path, map_location=self.device, weights_only=False) if path.exists() else None
        if state is None or state["epoch"] != ckpt.get("epoch"):
            LOGGER.warning(
                f"{path} is missing or from another epoch: resuming from last.pt's float16 EMA weights, "
                "which does not reproduce an uninterrupted run exactly"
            )
            return
        unwrap_model(self.model).load_state_dict(state["model"])
        self.ema.ema.load_state_dict(state["ema"])
        self.ema.updates = state["updates"]
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])

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
        self.metrics = validate(
            model,
            self.test_loader.dataset,
            batch_size=max(self.batch_size, 1),
            conf=self.validator.args.conf,
            iou=self.args.iou,
            device=str(self.device),
            save_dir=self.save_dir,
        )
        self.metrics.pop("fitness", None)

    def plot_training_labels(self):  # ultralytics' label plots assume its YOLO label files
        return None

    def plot_training_samples(self, batch, ni):
        return None


def _set_epoch(trainer: HeadTrainer) -> None:
    """Tell the train loader's sampler and dataset the epoch (their order and augmentations derive from it)."""
    loader = trainer.train_loader
    if isinstance(loader.sampler, EpochSampler):
        loader.sampler.set_epoch(trainer.epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(trainer.epoch)


def _set_ema_decay(trainer: HeadTrainer) -> None:
    """Apply train.ema_decay and ema_tau (ultralytics builds its EMA with a fixed 0.9999 and 2000); keeps a
    resumed EMA's state."""
    decay, tau = trainer.ema_decay, trainer.ema_tau
    trainer.ema.decay = lambda x: decay * (1 - math.exp(-x / tau))
