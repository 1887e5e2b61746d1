"""Loading processes (``train.workers``) change nothing in what the network sees."""

from __future__ import annotations

import torch

from vggheads.model.config import ModelConfig
from vggheads.model.toydata import toy_dataset
from vggheads.model.trainer import HeadTrainer


def test_train_loader_gives_the_same_batches_with_workers(tmp_path):
    head, images, heads = toy_dataset(tmp_path / "toy", n_train=6, n_val=2, size=64, seed=1)
    arch = ModelConfig(size="n", n_shape=8, n_expr=4, imgsz=64, head_model=str(head))

    def batches(workers: int) -> list[dict]:
        trainer = HeadTrainer(
            arch,
            images,
            heads,
            overrides={
                "imgsz": 64,
                "device": "cpu",
                "seed": 0,
                "project": str(tmp_path),
                "name": f"w{workers}",
                "exist_ok": True,
                "verbose": False,
                "plots": False,
            },
        )
        trainer.args.workers = workers  # ultralytics sets 0 on a CPU; a GPU run keeps what params.yaml says
        loader = trainer.get_dataloader(None, batch_size=4, mode="train")
        assert loader.num_workers == workers
        loader.sampler.set_epoch(3)
        loader.dataset.set_epoch(3)
        return list(loader)

    plain, parallel = batches(0), batches(2)
    assert len(plain) == len(parallel) == 2
    for a, b in zip(plain, parallel):
        assert torch.equal(a["img"], b["img"]) and torch.equal(a["bboxes"], b["bboxes"])
        assert torch.equal(a["flame_params"], b["flame_params"])
