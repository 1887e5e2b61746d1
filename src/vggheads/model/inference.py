"""``HeadDetector``: every head in an image with its box, score, 413 parameters, 68 landmarks,
vertices, rotation and yaw/pitch/roll, from the safetensors weights (torch) or the ONNX file
(onnxruntime); both give the same output.

The paper's pipeline (section 5): long side -> the model size, centred pad 127, /255; score
threshold; NMS at IoU 0.5; the kept parameter vectors are padded to 413, mapped back to the
original image (un-pad, un-scale: an exact similarity of the vector) and decoded with the head model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.similarity import transform_params
from ..errors import InputError, MissingWeightsError
from .config import ModelConfig
from .dataset import letterbox
from .flame import head_geometry, pad_params


@dataclass
class DetectedHead:
    """One detected head; coordinates in the original image's pixels (x right, y down, z = depth).

    ``rotation`` is the paper's R (head model frame -> image frame; frontal = diag(1, -1, -1)),
    angles in degrees in the paper's yaw/pitch/roll convention.
    """

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    flame_params: np.ndarray  # (413,) paper order, image pixels
    landmarks: np.ndarray  # (68, 3) x, y, depth
    rotation: np.ndarray  # (3, 3)
    yaw: float
    pitch: float
    roll: float
    face_box: np.ndarray  # (4,) box of the face vertices
    vertices: np.ndarray | None = field(default=None, repr=False)  # (V, 3)

    def to_dict(self, vertices: bool = False) -> dict:
        """JSON-able: lists of floats; ``vertices`` only when asked (they are large)."""
        out = {
            "box": _floats(self.box),
            "score": round(float(self.score), 6),
            "flame_params": _floats(self.flame_params),
            "landmarks": _floats(self.landmarks),
            "rotation": _floats(self.rotation),
            "yaw": round(self.yaw, 4),
            "pitch": round(self.pitch, 4),
            "roll": round(self.roll, 4),
            "face_box": _floats(self.face_box),
        }
        if vertices and self.vertices is not None:
            out["vertices"] = _floats(self.vertices)
        return out

    def to_prediction(self):
        """The evaluation package's :class:`~vggheads.evaluation.types.HeadPrediction`."""
        from ..evaluation.types import HeadPrediction

        return HeadPrediction(
            box=self.box,
            score=self.score,
            landmarks=self.landmarks[:, :2],
            landmarks_3d=self.landmarks,
            rotation=self.rotation,
            angles=(self.yaw, self.pitch, self.roll),
            flame_params=self.flame_params,
            vertices=self.vertices,
            face_box=self.face_box,
        )


def _floats(a) -> list:
    return np.round(np.asarray(a, dtype=np.float64), 4).tolist()


class HeadDetector:
    """Detect heads and regress their 3D head model.

    ``weights``: a ``.safetensors`` file or a directory holding ``model.safetensors`` (e.g. the
    ``data/model`` output of the train stage); ``onnx``: run this ONNX file with onnxruntime instead
    (``True``: ``model.onnx`` next to the weights). ``head_model`` overrides the head-model path
    recorded at training time (its content must be the same model).

    Example::

        detector = HeadDetector("data/model")
        for head in detector("photo.jpg"):
            print(head.box, head.score, head.yaw, head.pitch, head.roll)
    """

    def __init__(
        self,
        weights: str | Path = "data/model",
        onnx: str | Path | bool | None = None,
        head_model: str | Path | None = None,
        conf: float = 0.5,
        iou: float = 0.5,
        max_det: int = 100,
        device: str = "cpu",
        vertices: bool = True,
    ):
        from .checkpoint import load_model, read_config, resolve_weights

        self.conf, self.iou, self.max_det, self.device, self.keep_vertices = conf, iou, max_det, device, vertices
        self.session = self.model = None
        if onnx:
            onnx_path = Path(onnx) if not isinstance(onnx, bool) else resolve_weights(weights).with_suffix(".onnx")
            if not onnx_path.exists():
                raise MissingWeightsError("ONNX detector", onnx_path, "export one with the train stage (rule train)")
            import onnxruntime as ort

            self.arch: ModelConfig = read_config(onnx_path)
            self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        else:
            self.model = load_model(weights, device=device)
            self.arch = self.model.arch
        self.head_model = Path(head_model or self.arch.head_model)
        if not self.head_model.exists():
            raise MissingWeightsError(
                "head model",
                self.head_model,
                "pass head_model= (or --head-model) pointing at the head model used in training",
            )
        self.geometry = head_geometry(self.head_model, self.arch.n_shape, self.arch.n_expr, device)

    @property
    def imgsz(self) -> int:
        return self.arch.imgsz

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The network's output ``(B, 5 + P, A)`` for letterboxed float images ``(B, 3, S, S)`` in [0, 1]."""
        if self.session is not None:
            return self.session.run(None, {"images": images.astype(np.float32)})[0]
        with torch.inference_mode():
            return self.model(torch.from_numpy(images).to(self.device))[0].cpu().numpy()

    def __call__(self, image: np.ndarray | str | Path) -> list[DetectedHead]:
        """Heads in an RGB uint8 image ``(H, W, 3)`` (or an image path), best score first."""
        if isinstance(image, (str, Path)):
            from ..core.images import load_rgb

            image = load_rgb(image)
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        canvas, A, b = letterbox(image, self.imgsz)
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        return self.postprocess(self.raw(x)[0], A, b)

    def postprocess(self, out: np.ndarray, A: np.ndarray, b: np.ndarray) -> list[DetectedHead]:
        """One image's raw output ``(5 + P, A)`` -> heads in original pixels (input map ``p -> A p + b``)."""
        import torchvision

        from ..geometry import decode

        out = torch.from_numpy(np.ascontiguousarray(out)).float().T  # (anchors, 5 + P)
        scores = out[:, 4]
        keep = scores >= self.conf
        out, scores = out[keep], scores[keep]
        xywh = out[:, :4]
        boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        kept = torchvision.ops.nms(boxes, scores, self.iou)[: self.max_det]
        if not len(kept):
            return []
        inv = np.linalg.inv(A)
        inv_b = -inv @ b
        boxes = boxes[kept].numpy().astype(np.float64)
        boxes = np.concatenate([boxes[:, :2] @ inv.T + inv_b, boxes[:, 2:] @ inv.T + inv_b], 1)
        params = pad_params(out[kept, 5:], self.arch.n_shape, self.arch.n_expr).numpy()
        params = transform_params(params, inv, inv_b)
        geo = self.geometry
        dec = decode(torch.from_numpy(params).to(self.device), geo.active)
        verts = dec.vertices_image.cpu().numpy()
        face = verts[:, geo.face_idx.cpu().numpy()]
        heads = []
        for k in range(len(kept)):
            heads.append(
                DetectedHead(
                    box=boxes[k],
                    score=float(scores[kept[k]]),
                    flame_params=params[k],
                    landmarks=dec.landmarks_image[k].cpu().numpy().astype(np.float64),
                    rotation=dec.R[k].cpu().numpy().astype(np.float64),
                    yaw=float(dec.yaw[k]),
                    pitch=float(dec.pitch[k]),
                    roll=float(dec.roll[k]),
                    face_box=np.concatenate([face[k, :, :2].min(0), face[k, :, :2].max(0)]).astype(np.float64),
                    vertices=verts[k].astype(np.float64) if self.keep_vertices else None,
                )
            )
        return heads

    def predictor(self):
        """A :data:`vggheads.evaluation.types.Predictor`: image -> list of HeadPrediction."""
        return lambda image: [h.to_prediction() for h in self(image)]
