"""WIDER FACE val: reader of the official ``.mat`` ground truth and the official AP algorithm.

Files (``wider.ground_truth`` folder): ``wider_face_val.mat`` (events, file names, xywh boxes)
and ``wider_{easy,medium,hard}_val.mat`` (1-based keep-lists per image). Images
(``wider.images``): ``<event>/<name>.jpg`` as in ``WIDER_val/images``; a flat folder of
``<name>.jpg`` also works.

The algorithm is the official one, as ported to Python by wondervictor's ``evaluation.py``
(identical numbers to the MATLAB ``eval_tools``):

* scores normalised by the min and max over the whole prediction set (min starts at 1, max at 0);
* per image, predictions in descending score order each take the GT box of highest IoU
  (``+1`` pixel convention, predictions' ``x2 = x + w``); if that IoU >= 0.5 and the GT box is
  outside the setting's keep-list, the prediction and the box are both *ignored*; a box already
  recalled is not re-assigned (the prediction stays a false positive);
* images with no GT box or no prediction are skipped (their keep-list boxes still count in the
  recall denominator);
* 1,000 thresholds ``1 - (t + 1) / 1000``; precision = TP / proposals and recall = TP / kept faces
  summed over images; VOC all-point AP.

Unlike the Python port, prediction files are matched to images by removing the ``.jpg`` suffix,
not by ``rstrip('.jpg')`` (which strips any trailing '.', 'j', 'p', 'g' characters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..core.boxes import iou_matrix
from .protocol_metrics import voc_ap
from ..core.images import load_rgb
from .types import BenchmarkResult, HeadPrediction, Predictor

log = logging.getLogger(__name__)

SETTINGS = ("easy", "medium", "hard")
THRESHOLDS = 1000
PAPER_SCORE_THRESHOLD = 0.01  # the VGGHeads WIDER script: conf 0.01, NMS 0.5, <= 1000 boxes


@dataclass
class WiderImage:
    event: str
    name: str  # file name without .jpg
    boxes: np.ndarray  # (G, 4) xywh, the .mat's integers as float
    keep: dict[str, np.ndarray]  # setting -> 0-based indices of the boxes kept in that setting
    image_path: Path | None = None


def _loadmat(path: Path, keys: tuple[str, ...]) -> dict:
    from scipy.io import loadmat

    if not path.exists():
        raise InputError(f"{path}: WIDER FACE ground-truth file not found")
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for a corrupt file
        raise InputError(f"{path}: not a readable MATLAB file ({exc})") from None
    for key in keys:
        if key not in mat:
            raise InputError(
                f"{path}: field '{key}' missing (found: {sorted(k for k in mat if not k.startswith('__'))})"
            )
    return mat


def _find_image(images: Path | None, event: str, name: str) -> Path | None:
    if images is None:
        return None
    for candidate in (
        images / event / f"{name}.jpg",
        images / "images" / event / f"{name}.jpg",
        images / f"{name}.jpg",
    ):
        if candidate.exists():
            return candidate
    return None


def read_wider_val(ground_truth: str | Path, images: str | Path | None = None) -> list[WiderImage]:
    """Every val image with its boxes and keep-lists, in the .mat's event/file order.

    ``image_path`` is set for the images found under ``images`` (None elsewhere).
    """
    gt_dir = Path(ground_truth)
    if not gt_dir.is_dir():
        raise InputError(
            f"{gt_dir}: WIDER FACE ground-truth folder not found (expected wider_face_val.mat and the keep-lists)"
        )
    main = _loadmat(gt_dir / "wider_face_val.mat", ("event_list", "file_list", "face_bbx_list"))
    keeps = {s: _loadmat(gt_dir / f"wider_{s}_val.mat", ("gt_list",))["gt_list"] for s in SETTINGS}
    images = Path(images) if images else None
    out = []
    n_events = len(main["event_list"])
    for e in range(n_events):
        event = str(main["event_list"][e][0][0])
        files = main["file_list"][e][0]
        boxes = main["face_bbx_list"][e][0]
        if len(files) != len(boxes):
            raise InputError(
                f"{gt_dir / 'wider_face_val.mat'}: event '{event}' has {len(files)} files but {len(boxes)} box lists"
            )
        for j in range(len(files)):
            name = str(files[j][0][0])
            b = np.asarray(boxes[j][0], dtype=np.float64).reshape(-1, 4)
            keep = {}
            for s in SETTINGS:
                k = np.asarray(keeps[s][e][0][j][0]).reshape(-1).astype(np.int64)
                if len(k) and (k.min() < 1 or k.max() > len(b)):
                    raise InputError(
                        f"{gt_dir / f'wider_{s}_val.mat'}: keep-list of {event}/{name} has index "
                        f"{int(k.max())} for {len(b)} boxes"
                    )
                keep[s] = k - 1
            out.append(WiderImage(event, name, b, keep, _find_image(images, event, name)))
    return out


# ---------------------------------------------------------------- the official algorithm


def normalize_scores(preds: dict) -> dict:
    """The official global min-max normalisation (min starts at 1, max at 0). preds: key -> (N, 5) xywh+score."""
    max_score, min_score = 0.0, 1.0
    for v in preds.values():
        if len(v):
            max_score = max(max_score, float(np.max(v[:, 4])))
            min_score = min(min_score, float(np.min(v[:, 4])))
    diff = max_score - min_score
    out = {}
    for k, v in preds.items():
        v = np.array(v, dtype=np.float64).reshape(-1, 5)
        if len(v):
            v[:, 4] = (v[:, 4] - min_score) / diff if diff > 0 else 1.0
        out[k] = v
    return out


def image_eval(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray, iou_thresh: float = 0.5):
    """One image: pred (N, 5) xywh+score sorted by descending score, gt (G, 4) xywh, ignore (G,)
    1 = kept. -> (pred_recall (N,): recalled kept faces after each prediction, proposal (N,): 1 if
    the prediction counts as a proposal, -1 if ignored)."""
    p = pred[:, :4].copy()
    g = gt.copy()
    p[:, 2:] += p[:, :2]
    g[:, 2:] += g[:, :2]
    overlaps = iou_matrix(p, g, plus_one=True)
    recall = np.zeros(len(g))
    proposal = np.ones(len(p))
    pred_recall = np.zeros(len(p))
    for h in range(len(p)):
        idx = int(np.argmax(overlaps[h]))
        if overlaps[h, idx] >= iou_thresh:
            if ignore[idx] == 0:
                recall[idx] = -1
                proposal[h] = -1
            elif recall[idx] == 0:
                recall[idx] = 1
        pred_recall[h] = np.count_nonzero(recall == 1)
    return pred_recall, proposal


def img_pr_info(
    scores: np.ndarray, proposal: np.ndarray, pred_recall: np.ndarray, thresh_num: int = THRESHOLDS
) -> np.ndarray:
    """(thresh_num, 2): proposals and recalled faces at each threshold ``1 - (t + 1) / thresh_num``.

    ``scores`` must be in descending order; the official loop takes the last index whose score is
    >= the threshold, i.e. the count of such scores minus one (vectorised here).
    """
    info = np.zeros((thresh_num, 2))
    thresh = 1 - (np.arange(thresh_num) + 1) / thresh_num
    counts = np.searchsorted(-np.asarray(scores, dtype=np.float64), -thresh, side="right")
    has = counts > 0
    proposals = np.cumsum(proposal == 1)
    info[has, 0] = proposals[counts[has] - 1]
    info[has, 1] = np.asarray(pred_recall)[counts[has] - 1]
    return info


def wider_ap(
    images: list[WiderImage],
    preds: dict[tuple[str, str], np.ndarray],
    iou_thresh: float = 0.5,
    thresh_num: int = THRESHOLDS,
) -> dict:
    """AP per setting over ``images``; preds: (event, name) -> (N, 5) xywh + score.

    An image of ``images`` without an entry in ``preds`` is an error (as in the official code):
    give an empty (0, 5) array for an image with no detection.
    -> {setting: {"ap", "recall": [...], "precision": [...], "faces"}}.
    """
    missing = [f"{im.event}/{im.name}" for im in images if (im.event, im.name) not in preds]
    if missing:
        raise InputError(f"WIDER evaluation: no predictions for {len(missing)} images, e.g. {missing[:3]}")
    norm = normalize_scores({(im.event, im.name): preds[(im.event, im.name)] for im in images})
    out = {}
    for setting in SETTINGS:
        pr_curve = np.zeros((thresh_num, 2))
        count_face = 0
        for im in images:
            pred = norm[(im.event, im.name)]
            order = np.argsort(-pred[:, 4], kind="stable")
            pred = pred[order]
            keep = im.keep[setting]
            count_face += len(keep)
            if len(im.boxes) == 0 or len(pred) == 0:
                continue
            ignore = np.zeros(len(im.boxes))
            ignore[keep] = 1
            pred_recall, proposal = image_eval(pred, im.boxes, ignore, iou_thresh)
            pr_curve += img_pr_info(pred[:, 4], proposal, pred_recall, thresh_num)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = pr_curve[:, 1] / pr_curve[:, 0]
        recall = pr_curve[:, 1] / count_face if count_face else np.zeros(thresh_num)
        ap = voc_ap(recall, precision) if count_face else float("nan")  # no kept face: AP undefined
        out[setting] = {
            "ap": ap,
            "recall": recall.tolist(),
            "precision": np.nan_to_num(precision).tolist(),
            "faces": count_face,
        }
    return out


# ---------------------------------------------------------------- prediction files (the official format)


def write_prediction_files(directory: str | Path, preds: dict[tuple[str, str], np.ndarray]) -> None:
    """``<dir>/<event>/<name>.txt``: the image name, the count, then ``x y w h score`` lines."""
    directory = Path(directory)
    for (event, name), boxes in preds.items():
        path = directory / event / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{name}.jpg", str(len(boxes))]
        lines += [" ".join(f"{v:.3f}" for v in row[:4]) + f" {row[4]:.6f}" for row in np.asarray(boxes).reshape(-1, 5)]
        path.write_text("\n".join(lines) + "\n")


def read_prediction_files(directory: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """Read ``<dir>/<event>/<name>.txt`` files (official format) -> (event, name) -> (N, 5)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: WIDER prediction folder not found")
    out = {}
    for path in sorted(directory.glob("*/*.txt")):
        lines = path.read_text().splitlines()
        if len(lines) < 2:
            raise InputError(f"{path}: expected the image name and a box count on the first two lines")
        name = lines[0].strip().split("/")[-1]
        if name.endswith(".jpg"):
            name = name[: -len(".jpg")]
        rows = []
        for n, line in enumerate(lines[2:], start=3):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) < 5:
                raise InputError(f"{path}:{n}: expected 'x y w h score', got '{line}'")
            rows.append([float(v) for v in parts[:5]])
        out[(path.parent.name, name)] = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return out


# ---------------------------------------------------------------- running a predictor


def predictions_to_xywhs(
    heads: list[HeadPrediction], use_face_box: bool = False, min_score: float | None = None
) -> np.ndarray:
    rows = []
    for h in heads:
        if min_score is not None and h.score < min_score:
            continue
        b = h.face_box if (use_face_box and h.face_box is not None) else h.box
        rows.append([b[0], b[1], b[2] - b[0], b[3] - b[1], h.score])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def evaluate_wider(
    images: list[WiderImage],
    predictor: Predictor,
    system: str = "model",
    use_face_box: bool = True,
    min_score: float | None = None,
    max_images: int | None = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Run ``predictor`` on every image that has a file and score easy/medium/hard AP on those images.

    ``use_face_box``: score the face box where the system gives one (the paper's text; its code
    scores head boxes). Images without a file are left out and counted in ``images_missing``.
    """
    from tqdm import tqdm

    present = [im for im in images if im.image_path is not None][:max_images]
    if not present:
        raise InputError("WIDER evaluation: none of the val images was found under wider.images")
    preds = {}
    for im in tqdm(present, desc="wider", disable=not progress):
        heads = predictor(load_rgb(im.image_path))
        preds[(im.event, im.name)] = predictions_to_xywhs(heads, use_face_box, min_score)
    aps = wider_ap(present, preds)
    result = BenchmarkResult("wider", system)
    for s in SETTINGS:
        result.metrics[f"ap_{s}"] = aps[s]["ap"]
        result.metrics[f"faces_{s}"] = aps[s]["faces"]
        result.curves[f"pr_{s}"] = {"recall": aps[s]["recall"], "precision": aps[s]["precision"]}
    result.metrics["images"] = len(present)
    result.metrics["images_missing"] = len(images) - len(present)
    result.metrics["detections"] = int(sum(len(v) for v in preds.values()))
    result.protocol = {
        "algorithm": "official WIDER FACE eval (wondervictor port; +1-pixel IoU >= 0.5, keep-list ignores, "
        "global min-max score normalisation, 1000 thresholds, VOC all-point AP)",
        "images": "all val images"
        if len(present) == len(images)
        else f"{len(present)} of {len(images)} val images (subset)",
        "boxes": "face boxes where the system gives them, else its boxes"
        if use_face_box
        else "the system's (head) boxes",
        "name_matching": "suffix '.jpg' removed (not rstrip)",
    }
    for im in present:
        result.records.append(
            {"image": f"{im.event}/{im.name}", "faces": len(im.boxes), "detections": len(preds[(im.event, im.name)])}
        )
    return result
