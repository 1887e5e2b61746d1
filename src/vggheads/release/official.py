"""The paper's released model as a backend: ``vgg_heads_l.trcd`` (TorchScript) or ``vgg_heads_l.onnx``.

The pipeline is the ``head_detector`` package's (v0.1.0, paper section 5), step by step:

1. **Letterbox** (:func:`letterbox_official`): the long side to ``S`` = 640 with Lanczos
   (``cv2.INTER_LANCZOS4``), the short side to ``int(short * S / long)`` (truncated), padded
   centred with 127 (``top = pad_h // 2``, ``left = pad_w // 2``), RGB, ``/ 255``, no normalisation.
   ``scale = S / max(h, w)``.
2. **Model**: input ``(B, 3, S, S)`` float32; outputs ``boxes [B, A, 4]`` (xyxy, canvas pixels),
   ``scores [B, A, 1]`` and ``params [B, A, 413]`` (paper order, ``v = s R v + t`` in canvas pixels).
3. **Post-processing** (``head_detector.utils.nms``): score >= threshold, the best 1000,
   NMS at IoU 0.5, keep 100.
4. **Back to the image**: boxes clipped to the canvas, un-padded, divided by ``scale`` and rounded
   to integers (the package's ``np.rint``); the parameter vector mapped exactly by the same
   un-pad/un-scale (``s' = s / scale``, ``t' = (t - pad) / scale``), then decoded through the head
   model (FLAME: LBS with the jaw, +0.05 z, the 6D rotation; 68 landmarks from the embedding; face
   box = extent of the face vertices; yaw/pitch/roll in the paper's convention).

``mode="evaluation"`` is the paper's evaluation scripts instead (``yolo_head_training/evaluation``):
bilinear resize to ``int(side * scale)``, padding at the bottom and right, boxes divided by the
scale without clipping or rounding.

**Channel order.** The paper's training code reads images with ``cv2.imread`` and never converts
them (``yolo_head/dataset.py``: BGR), its pose, DAD-3DHeads and FDDB scripts feed ``cv2.imread``
images (BGR) and its WIDER script converts to RGB, while the ``head_detector`` package converts to
RGB. Whether the released files reverse the channels themselves cannot be checked without them,
so ``channels`` chooses (``rgb``: the package, the default; ``bgr``: the training code).

Decoding needs the real FLAME (``headmodel.flame``) for results comparable to the paper; with the
project's own head model it runs, but the vertices, landmarks and face boxes are those of another
mesh (the pose and the head boxes are the model's own and stay meaningful).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..core.param_layout import N_PARAMS, SCALE_INDEX, TRANSLATION
from ..errors import InputError, MissingWeightsError
from . import LICENCE, MODEL_ORIGIN

log = logging.getLogger(__name__)

IMAGE_SIZE = 640
PAD_VALUE = 127
TOP_K = 1000  # candidates kept before NMS (head_detector.utils.nms)
KEEP_TOP_K = 100  # heads kept after NMS
MODES = ("package", "evaluation")
TORCHSCRIPT_SUFFIXES = (".trcd", ".pt", ".ts", ".torchscript", ".jit")


def is_official_file(path: str | Path) -> bool:
    """True for a TorchScript file, or an ONNX file that is not one of this project's exports."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TORCHSCRIPT_SUFFIXES:
        return True
    if suffix == ".onnx":
        return not _is_project_onnx(path)
    return False


def _is_project_onnx(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        import onnx

        from ..model.checkpoint import META_KEY

        meta = {p.key for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # unreadable: let the loader say so
        return False
    return META_KEY in meta


def missing_model_error(path: str | Path, key: str = "--weights") -> MissingWeightsError:
    return MissingWeightsError(
        "the released VGGHeads model",
        path,
        f"It comes from {MODEL_ORIGIN}; licence {LICENCE}. Download it yourself and point {key} at it; "
        "nothing is downloaded at run time.",
    )


def letterbox_official(
    image: np.ndarray, size: int = IMAGE_SIZE, mode: str = "package"
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The released pipeline's letterbox: ``(canvas (size, size, 3) uint8, scale, (pad_left, pad_top))``.

    A point ``p`` of the image lies at ``p * scale + pad`` on the canvas (``scale = size / max(h, w)``;
    the short side is truncated, as the package does, so that axis is off by under a pixel).
    """
    import cv2

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if mode == "package":
        if h > w:
            new_h, new_w = size, int(w * size / h)
        else:
            new_h, new_w = int(h * size / w), size
        interp = cv2.INTER_LANCZOS4
    else:  # the evaluation scripts: cv2.resize(image, (int(w * scale), int(h * scale))), bilinear
        new_w, new_h = int(w * scale), int(h * scale)
        interp = cv2.INTER_LINEAR
    new_w, new_h = max(1, new_w), max(1, new_h)
    resized = cv2.resize(np.ascontiguousarray(image), (new_w, new_h), interpolation=interp)
    pad_w, pad_h = size - new_w, size - new_h
    left, top = (pad_w // 2, pad_h // 2) if mode == "package" else (0, 0)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized[..., :3]
    return canvas, scale, (left, top)


def canvas_to_image_params(params: np.ndarray, scale: float, pad: tuple[int, int]) -> np.ndarray:
    """Parameter vectors ``(N, 413)`` in canvas pixels -> image pixels (un-pad, un-scale; exact).

    ``s R v + t`` on the canvas is ``(s R v + t - pad) / scale`` in the image: ``s' = s / scale``,
    ``t'_xy = (t_xy - pad) / scale``, ``t'_z = t_z / scale``; shape, expression, jaw and rotation unchanged.
    """
    p = np.array(params, dtype=np.float64).reshape(-1, N_PARAMS)
    tx, ty, tz = range(TRANSLATION.start, TRANSLATION.stop)
    p[:, tx] = (p[:, tx] - pad[0]) / scale
    p[:, ty] = (p[:, ty] - pad[1]) / scale
    p[:, tz] = p[:, tz] / scale
    p[:, SCALE_INDEX] = p[:, SCALE_INDEX] / scale
    return p


def split_outputs(outputs, source: str = "model") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The released model's outputs -> ``(boxes (B, A, 4), scores (B, A), params (B, A, 413))`` float32.

    Accepts a tuple/list (or dict) of three arrays, recognised by their last axis (4, 1, 413) and,
    where that is ambiguous, in the package's order (boxes, scores, params).
    """
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if not isinstance(outputs, (list, tuple)) or len(outputs) != 3:
        kind = type(outputs).__name__ if not isinstance(outputs, (list, tuple)) else f"{len(outputs)} outputs"
        raise InputError(f"{source}: expected 3 outputs (boxes [B,A,4], scores [B,A,1], params [B,A,413]), got {kind}")
    arrays = [np.asarray(o.detach().cpu().numpy() if hasattr(o, "detach") else o, dtype=np.float32) for o in outputs]
    shapes = [a.shape for a in arrays]
    boxes = next((a for a in arrays if a.ndim == 3 and a.shape[-1] == 4), None)
    params = next((a for a in arrays if a.ndim == 3 and a.shape[-1] == N_PARAMS), None)
    scores = next((a for a in arrays if (a.ndim == 3 and a.shape[-1] == 1) or a.ndim == 2), None)
    if boxes is None or params is None or scores is None:
        raise InputError(
            f"{source}: outputs of shapes {shapes}; expected boxes [B,A,4], scores [B,A,1] and "
            f"params [B,A,{N_PARAMS}] (a parameter vector of another length is not the released model's)"
        )
    scores = scores.reshape(scores.shape[0], scores.shape[1])
    if not (boxes.shape[:2] == scores.shape == params.shape[:2]):
        raise InputError(f"{source}: outputs disagree on batch/anchors: {shapes}")
    return boxes, scores, params


def official_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    params: np.ndarray,
    conf: float = 0.5,
    iou: float = 0.5,
    top_k: int = TOP_K,
    keep_top_k: int = KEEP_TOP_K,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's ``(A, 4)``, ``(A,)``, ``(A, 413)`` -> the kept heads, best score first (the package's ``nms``)."""
    import torch
    import torchvision

    b = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))
    s = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
    p = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32))
    mask = s >= conf
    b, s, p = b[mask], s[mask], p[mask]
    if s.numel() > top_k:
        idx = torch.topk(s, k=top_k, largest=True, sorted=True).indices
        b, s, p = b[idx], s[idx], p[idx]
    keep = torchvision.ops.nms(b, s, float(iou))[:keep_top_k]
    return b[keep].numpy(), s[keep].numpy(), p[keep].numpy()


class OfficialDetector:
    """The released VGGHeads model with the ``head_detector`` package's exact pipeline.

    ``weights``: ``vgg_heads_l.trcd`` / ``vgg_heads_l_cpu.trcd`` (TorchScript) or ``vgg_heads_l.onnx``
    (or any file with the same contract); ``head_model``: the FLAME ``generic_model.pkl`` (the
    project's ``.npz`` runs, but its mesh is not FLAME's). Calls return
    :class:`~vggheads.model.inference.DetectedHead` lists, as this project's ``HeadDetector`` does.

    Example::

        detector = OfficialDetector("models/vgg_heads_l.trcd", head_model="models/flame/generic_model.pkl")
        for head in detector("photo.jpg"):
            print(head.box, head.score, head.yaw, head.pitch, head.roll)
    """

    def __init__(
        self,
        weights: str | Path,
        head_model: str | Path,
        conf: float = 0.5,
        iou: float = 0.5,
        top_k: int = TOP_K,
        keep_top_k: int = KEEP_TOP_K,
        image_size: int | None = None,
        mode: str = "package",
        device: str = "cpu",
        vertices: bool = True,
        key: str = "--weights",
        channels: str = "rgb",
    ):
        import torch

        from ..geometry import FlameLayer
        from ..headmodel import load_head_model

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if channels not in ("rgb", "bgr"):
            raise ValueError(f"channels must be rgb or bgr, got {channels!r}")
        self.channels = channels
        self.weights = Path(weights)
        if not self.weights.exists():
            raise missing_model_error(self.weights, key)
        self.conf, self.iou, self.top_k, self.keep_top_k = float(conf), float(iou), int(top_k), int(keep_top_k)
        self.mode, self.keep_vertices = mode, vertices
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.session = self.module = None
        self.input_uint8 = False
        fixed = None
        if self.weights.suffix.lower() == ".onnx":
            import onnxruntime as ort

            try:
                self.session = ort.InferenceSession(str(self.weights), providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise InputError(f"{self.weights}: not a loadable ONNX file ({exc})") from None
            inp = self.session.get_inputs()[0]
            self.input_name = inp.name
            # an export with the preprocessing inside takes uint8 pixels; the package's float /255 otherwise
            self.input_uint8 = "uint8" in str(inp.type)
            if len(inp.shape) == 4 and isinstance(inp.shape[2], int) and inp.shape[2] > 0:
                fixed = int(inp.shape[2])
        else:
            from .standin import SIZE_KEY

            extra = {SIZE_KEY: ""}
            try:
                self.module = torch.jit.load(str(self.weights), map_location=self.device, _extra_files=extra).eval()
            except Exception as exc:  # not TorchScript, truncated, ...
                raise InputError(f"{self.weights}: not a loadable TorchScript file ({exc})") from None
            if extra[SIZE_KEY]:
                fixed = int(extra[SIZE_KEY])
        self.image_size = int(image_size or fixed or IMAGE_SIZE)
        if fixed is not None and fixed != self.image_size:
            raise InputError(f"{self.weights}: the model takes {fixed} px inputs, not {self.image_size}")
        self.head_model_path = Path(head_model)
        model = load_head_model(self.head_model_path)
        self.is_flame = self.head_model_path.suffix == ".pkl" and model.n_vertices == 5023
        if not self.is_flame:
            log.warning(
                "%s is not FLAME: the released model's parameters are decoded through another mesh, so its "
                "vertices, landmarks and face boxes are not comparable to the paper's (set headmodel.flame)",
                self.head_model_path,
            )
        self.layer = FlameLayer(model).to(self.device).requires_grad_(False)
        self.face_idx = np.asarray(model.subsets["face"], dtype=np.int64)
        self.faces = np.asarray(model.faces)

    @property
    def backend(self) -> str:
        return "official-onnx" if self.session is not None else "official-torchscript"

    def raw(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model on a letterboxed float batch ``(B, 3, S, S)`` in [0, 1] -> split outputs."""
        try:
            if self.session is not None:
                feed = np.rint(batch * 255.0).astype(np.uint8) if self.input_uint8 else batch.astype(np.float32)
                out = self.session.run(None, {self.input_name: feed})
            else:
                import torch

                with torch.inference_mode():
                    out = self.module(torch.from_numpy(batch).to(self.device))
        except Exception as exc:  # a file of another contract fails inside the runtime
            raise InputError(
                f"{self.weights}: the model does not take a (B, 3, {self.image_size}, {self.image_size}) "
                f"float image batch as the released model does ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300] if str(exc) else ''})"
            ) from None
        return split_outputs(out, str(self.weights))

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        canvas, scale, pad = letterbox_official(image, self.image_size, self.mode)
        if self.channels == "bgr":
            canvas = canvas[..., ::-1]
        return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, scale, pad

    def __call__(self, image) -> list:
        """Heads in an RGB uint8 image ``(H, W, 3)`` (or an image path), best score first."""
        if isinstance(image, (str, Path)):
            from ..core.images import load_rgb

            image = load_rgb(image)
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        x, scale, pad = self.preprocess(image)
        boxes, scores, params = self.raw(x)
        return self.postprocess(boxes[0], scores[0], params[0], scale, pad)

    def postprocess(
        self, boxes: np.ndarray, scores: np.ndarray, params: np.ndarray, scale: float, pad: tuple[int, int]
    ) -> list:
        """One image's outputs (canvas pixels) -> DetectedHead list in image pixels."""
        import torch

        from ..geometry import decode
        from ..model.inference import DetectedHead

        boxes, scores, params = official_nms(boxes, scores, params, self.conf, self.iou, self.top_k, self.keep_top_k)
        if not len(scores):
            return []
        boxes = boxes.astype(np.float64)
        if self.mode == "package":
            boxes = boxes.clip(0, self.image_size)
        boxes[:, [0, 2]] -= pad[0]
        boxes[:, [1, 3]] -= pad[1]
        boxes /= scale
        if self.mode == "package":
            boxes = np.rint(boxes)
        p = canvas_to_image_params(params, scale, pad)
        with torch.inference_mode():
            dec = decode(torch.from_numpy(p.astype(np.float32)).to(self.device), self.layer)
        verts = dec.vertices_image.cpu().numpy().astype(np.float64)
        lms = dec.landmarks_image.cpu().numpy().astype(np.float64)
        R = dec.R.cpu().numpy().astype(np.float64)
        face = verts[:, self.face_idx, :2]
        heads = []
        for k in range(len(scores)):
            heads.append(
                DetectedHead(
                    box=boxes[k],
                    score=float(scores[k]),
                    flame_params=p[k],
                    landmarks=lms[k],
                    rotation=R[k],
                    yaw=float(dec.yaw[k]),
                    pitch=float(dec.pitch[k]),
                    roll=float(dec.roll[k]),
                    face_box=np.concatenate([face[k].min(0), face[k].max(0)]),
                    vertices=verts[k] if self.keep_vertices else None,
                )
            )
        return heads

    def predictor(self):
        """A :data:`vggheads.evaluation.types.Predictor`: image -> list of HeadPrediction."""
        return lambda image: [h.to_prediction() for h in self(image)]
