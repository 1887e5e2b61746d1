"""Saving, loading and exporting a trained detector.

- ``model.safetensors``: the weights (float32 state dict) with the architecture record
  (:class:`~vggheads.model.config.ModelConfig`) as JSON in the file's metadata, so the file alone
  rebuilds the network; ``model.json`` next to it holds the same record for people and tools.
- ``model.onnx``: the inference graph (input ``images`` ``(B, 3, S, S)`` float in [0, 1], output
  ``output0`` ``(B, 5 + P, A)``: xywh box, head score, the active FLAME parameters in input
  pixels), Conv+BN fused, with the same record in its metadata (``vggheads.model``).
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, MissingWeightsError
from ..io import atomic_path, write_json
from .config import ModelConfig

META_KEY = "vggheads.model"
ONNX_OPSET = 17


def resolve_weights(path: str | Path) -> Path:
    """A ``.safetensors`` file, or a directory holding ``model.safetensors``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.exists():
        raise MissingWeightsError(
            "detector weights",
            path,
            "train one with `snakemake data/model/model.safetensors` (rule train) or `vggheads train --help`",
        )
    return path


def save_model(model, path: str | Path) -> tuple[Path, Path]:
    """Write ``model`` (a HeadDetectionModel) as ``path`` (.safetensors) and ``path`` with .json; atomic."""
    from safetensors.torch import save_file

    path = Path(path)
    arch = model.arch.to_dict()
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={META_KEY: json.dumps(arch, sort_keys=True)})
    json_path = path.with_suffix(".json")
    write_json(
        json_path,
        {
            **arch,
            "parameters": int(sum(v.numel() for v in model.parameters())),
            "strides": [int(s) for s in model.stride.tolist()],
        },
    )
    return path, json_path


def read_config(path: str | Path) -> ModelConfig:
    """The architecture record of a ``.safetensors`` or ``.onnx`` file (from its metadata)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    else:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    if META_KEY not in meta:
        raise InputError(f"{path}: no '{META_KEY}' metadata; not a vggheads detector file")
    return ModelConfig.from_dict(json.loads(meta[META_KEY]))


def load_model(path: str | Path, device: str = "cpu"):
    """Rebuild a HeadDetectionModel from a ``.safetensors`` file (or a directory with model.safetensors); eval mode."""
    from safetensors.torch import load_file

    from .network import HeadDetectionModel

    path = resolve_weights(path)
    model = HeadDetectionModel(read_config(path))
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise InputError(
            f"{path}: weights do not fit the recorded architecture "
            f"(missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
        )
    return model.to(device).eval()


def export_onnx(model, path: str | Path, imgsz: int | None = None, dynamic_batch: bool = True) -> Path:
    """Export ``model`` to ONNX (fused copy; the original is untouched); atomic."""
    import onnx

    arch = model.arch
    imgsz = int(imgsz or arch.imgsz)
    m = deepcopy(model).float().cpu().eval().fuse(verbose=False)
    head = m.model[-1]
    head.export, head.format = True, "onnx"
    x = torch.zeros(1, 3, imgsz, imgsz)
    path = Path(path)
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(
            m,
            (x,),
            str(tmp),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic_batch else None,
        )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(arch.to_dict(), sort_keys=True)
        onnx.save(proto, str(tmp))
    return path


def check_onnx(model, onnx_path: str | Path, n: int = 2, seed: int = 0) -> dict[str, float]:
    """Run the ONNX file with onnxruntime and the torch model on the same random images.

    Returns the largest absolute differences of the boxes (also as a fraction of the input side), scores
    and parameters, and the largest difference of the parameters relative to each one's range (their
    scales range from radians to pixels per metre).
    """
    import onnxruntime as ort

    arch = model.arch
    x = torch.from_numpy(np.random.default_rng(seed).random((n, 3, arch.imgsz, arch.imgsz), dtype=np.float32))
    with torch.no_grad():
        ref = model.float().cpu().eval()(x)[0].numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": x.numpy()})[0]
    nc = len(arch.names)
    diff = np.abs(out - ref)
    params = slice(4 + nc, None)
    return {
        "boxes_max_abs": float(diff[:, :4].max()),
        "boxes_max_rel": float(diff[:, :4].max() / arch.imgsz),
        "scores_max_abs": float(diff[:, 4 : 4 + nc].max()),
        "params_max_abs": float(diff[:, params].max()),
        # relative to each parameter's range over the images and anchors: an element near zero says
        # nothing about the export (float reordering alone moves it by ~1e-4), a wrong op or layout does
        "params_max_rel": float(
            (diff[:, params] / (np.abs(ref[:, params]).max(axis=(0, 2), keepdims=True) + 1e-6)).max()
        ),
    }
