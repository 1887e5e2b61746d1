"""Render backends ``sdxl`` and ``tiny-sdxl``: diffusers SDXL conditioned on OpenPose skeletons.

The paper's generator (section 1.3): ``StableDiffusionXLAdapterPipeline`` with the openpose
T2I-Adapter on RealVisXL V4.0, DPM-Solver++ SDE with Karras sigmas, 40 steps, guidance 7.0,
adapter scale 0.7, fp16; ``StableDiffusionXLControlNetPipeline`` is the alternative. Settings
live in ``params.yaml`` under ``render.sdxl``.

``conditioning: head-mesh`` / ``pose+head-mesh`` draw the image around a procedural scene: the
heads the ``procedural`` backend would place on the skeletons (random shape, expression, jaw;
pose fitted to the face keypoints) are rendered to condition images (PNCC for the paper's
``okupyn/head-mesh-controlnet-xl``, depth for a depth ControlNet; :mod:`.scene_conditions`), SDXL
paints with one ControlNet per map (diffusers' multi-ControlNet), plus the skeleton through the
openpose T2I-Adapter (:class:`~vggheads.render.sdxl_pipeline.AdapterInjector`) or one more
ControlNet, and the heads table is the scene's exact truth, written as the procedural backend
writes it.

``tiny-sdxl`` is the same code with the tiny random-weight model of
:mod:`vggheads.render.tiny_sdxl`: its directories go through
:func:`~vggheads.render.sdxl_pipeline.load_pipeline` exactly like real weights. Getting the ready
pipeline (settings, offline loading, the adapter hook, the safety checker) is
:mod:`vggheads.render.sdxl_pipeline`; this module is the shard.

A shard is rendered in batches of samples of one image size; each sample has its own
``torch.Generator`` (CPU, seeded from the captions table), so a sample's image does not depend
on the batch it falls in. Every finished image is written atomically to the persistent work
directory with a JSON record beside it; a rerun after a kill renders only the samples without
a valid record, and the shard's images are hard-linked into the output directory at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import RenderContext, RenderResult
from .sdxl_pipeline import SafetyChecker, SdxlSettings, as_batch, load_pipeline, size_multiple

log = logging.getLogger(__name__)

RECORD_VERSION = 1
JPEG_QUALITY = 95
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def render_size(canvas_w: int, canvas_h: int, multiple: int, max_side: int | None) -> tuple[int, int]:
    """The pose canvas scaled down to ``max_side`` (long side) and rounded to ``multiple`` (>= one)."""
    scale = min(1.0, max_side / max(canvas_w, canvas_h)) if max_side else 1.0
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (canvas_w, canvas_h))


# ---------------------------------------------------------------------------------------------
# the shard


@dataclass
class Sample:
    sample_id: str
    prompt: str
    negative_prompt: str
    seed: int
    condition: Path
    width: int
    height: int
    key: str = ""
    canvas: tuple[int, int] = (0, 0)  # the pose canvas (width, height)
    persons: list = field(default_factory=list)  # (person, (17, 3) COCO keypoints in canvas pixels)
    scene_key: str = ""  # head-mesh modes: what decides the scene (and its truth)
    scene: object = None  # head-mesh modes: its SceneConditions while it renders


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def image_key(settings: SdxlSettings, device, dtype, sample: Sample) -> str:
    """What decides a sample's pixels; a record with another key is stale and the sample is redone."""
    blob = {
        "version": RECORD_VERSION,
        "models": [
            settings.base_model,
            settings.conditioning,
            settings.condition_model,
            settings.vae,
            settings.variant,
        ],
        "sampling": [settings.scheduler, settings.steps, settings.guidance_scale, settings.conditioning_scale],
        "hardware": [device.type, str(dtype)],
        "format": settings.image_format,
        "sample": [
            sample.prompt,
            sample.negative_prompt,
            sample.seed,
            sample.width,
            sample.height,
            _file_digest(sample.condition),
        ],
    }
    if settings.head_mesh:
        blob["head_mesh"] = [
            settings.adapter,
            [list(c) for c in settings.controlnets],
            [list(c) for c in settings.scales],
            sample.scene_key,
        ]
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def scene_keys(samples: list[Sample], params: dict, head_model: Path, maps: tuple[str, ...]) -> None:
    """Set each sample's ``scene_key``: a digest of what decides its procedural scene (keypoints,
    canvas, render.procedural, poses.min_confidence, the head-model file, the maps)."""
    from .procedural import DEFAULTS

    base = json.dumps(
        {
            "procedural": {**DEFAULTS, **(params["render"].get("procedural") or {})},
            "min_confidence": float((params.get("poses") or {}).get("min_confidence", 0.3)),
            "head_model": _file_digest(Path(head_model)),
            "maps": list(maps),
        },
        sort_keys=True,
    )
    for s in samples:
        h = hashlib.sha256(base.encode())
        h.update(
            json.dumps([s.canvas, [[p, [round(float(v), 4) for v in kp.ravel()]] for p, kp in s.persons]]).encode()
        )
        s.scene_key = h.hexdigest()[:20]


def collect_samples(ctx: RenderContext, multiple: int, max_side: int | None, counts: dict) -> list[Sample]:
    """One sample per caption with a condition image; the others are counted drops."""
    import numpy as np

    canvas, persons = {}, {}
    for row in ctx.poses.select(["sample_id", "person", "width", "height", "keypoints", "condition_image"]).to_pylist():
        canvas.setdefault(row["sample_id"], row)
        persons.setdefault(row["sample_id"], []).append(
            (int(row["person"]), np.asarray(row["keypoints"], dtype=np.float64).reshape(17, 3))
        )
    samples = []
    for cap in ctx.captions.select(["sample_id", "prompt", "negative_prompt", "seed"]).to_pylist():
        pose = canvas.get(cap["sample_id"])
        if pose is None:
            counts["dropped_no_pose"] += 1
            continue
        condition = ctx.conditions_dir / pose["condition_image"]
        if not condition.is_file():
            counts["dropped_missing_condition"] += 1
            log.warning("%s: condition image %s not found; sample dropped", cap["sample_id"], condition)
            continue
        w, h = render_size(pose["width"], pose["height"], multiple, max_side)
        samples.append(
            Sample(
                cap["sample_id"],
                cap["prompt"],
                cap["negative_prompt"] or "",
                int(cap["seed"]),
                condition,
                w,
                h,
                canvas=(int(pose["width"]), int(pose["height"])),
                persons=sorted(persons[cap["sample_id"]], key=lambda p: p[0]),
            )
        )
    return samples


def _record_path(work_dir: Path, sample_id: str) -> Path:
    return work_dir / f"{sample_id}.json"


def _load_record(work_dir: Path, sample: Sample, ext: str) -> dict | None:
    """The finished record of ``sample`` if it is valid for the current settings."""
    path = _record_path(work_dir, sample.sample_id)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != sample.key:
        return None
    if not record.get("nsfw") and not (work_dir / f"{sample.sample_id}.{ext}").is_file():
        return None
    if not record.get("nsfw") and sample.scene_key and not (work_dir / str(record.get("heads"))).is_file():
        return None
    return record


def _batches(samples: list[Sample], batch_size: int) -> list[list[Sample]]:
    """Batches of one image size, in first-appearance order of the sizes."""
    by_size: dict[tuple[int, int], list[Sample]] = {}
    for s in samples:
        by_size.setdefault((s.width, s.height), []).append(s)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def _save_image(image, path: Path, image_format: str) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        if image_format == "jpg":
            image.save(tmp, format="JPEG", quality=JPEG_QUALITY)
        else:
            image.save(tmp, format="PNG")
        os.chmod(tmp, 0o666 & ~_UMASK)  # the temp file is private (mkstemp); images are ordinary files


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported
        shutil.copy2(src, dst)


def condition_images(settings: SdxlSettings, batch: list[Sample]) -> dict[str, list]:
    """PIL condition images of a batch per condition: ``pose`` (the skeleton image, resized) and the
    scene's maps (rendered at the image size; ``sample.scene`` must be set)."""
    from PIL import Image

    width, height = batch[0].width, batch[0].height
    out = {}
    if settings.adapter or not settings.maps or any(c == "pose" for c, _ in settings.controlnets):
        out["pose"] = [
            Image.open(s.condition).convert("RGB").resize((width, height), Image.Resampling.LANCZOS) for s in batch
        ]
    for m in settings.maps:
        out[m] = [Image.fromarray(s.scene.maps[m]) for s in batch]
    return out


def generate(pipe, settings: SdxlSettings, batch: list[Sample], steps: int | None = None) -> list:
    """Run the pipeline once for a batch of samples of one size; returns PIL images in order."""
    import torch

    width, height = batch[0].width, batch[0].height
    images = condition_images(settings, batch)
    injector = getattr(pipe, "vggheads_adapter", None)
    if getattr(pipe, "controlnet", None) is None:  # StableDiffusionXLAdapterPipeline
        kwargs = {"image": images["pose"], "adapter_conditioning_scale": settings.scale("pose")}
    else:
        conds = [c for c, _ in settings.controlnets] or ["pose"]
        if len(conds) == 1:
            kwargs = {"image": images[conds[0]], "controlnet_conditioning_scale": settings.scale(conds[0])}
        else:  # MultiControlNetModel: one (B, 3, H, W) batch in [0, 1] and one scale per ControlNet
            kwargs = {
                "image": [as_batch(images[c]) for c in conds],  # (it takes no nested lists of images)
                "controlnet_conditioning_scale": [settings.scale(c) for c in conds],
            }
        if injector is not None:
            injector.set(images["pose"], settings.scale("pose"), pipe.device, pipe.unet.dtype)
    generators = [torch.Generator("cpu").manual_seed(s.seed) for s in batch]
    try:
        with torch.inference_mode():
            out = pipe(
                prompt=[s.prompt for s in batch],
                negative_prompt=[s.negative_prompt for s in batch],
                height=height,
                width=width,
                num_inference_steps=steps or settings.steps,
                guidance_scale=settings.guidance_scale,
                generator=generators,
                output_type="pil",
                **kwargs,
            )
    finally:
        if injector is not None:
            injector.clear()
    return out.images


def render_shard(ctx: RenderContext) -> RenderResult:
    """Render every sample of the shard not already finished in ``ctx.work_dir``."""
    from collections import Counter

    from tqdm import tqdm

    backend = ctx.params["render"]["backend"]
    settings = SdxlSettings.from_params(ctx.params, backend)
    start = time.perf_counter()
    pipe = load_pipeline(settings)
    device, dtype = pipe.device, pipe.unet.dtype
    load_s = time.perf_counter() - start
    checker = SafetyChecker(settings.safety_checker, device, dtype, backend) if settings.safety_checker else None
    if checker is None:
        log.info("safety checker: off (render.sdxl.safety_checker is null): images are not NSFW-filtered")
    else:
        log.info("safety checker: %s; flagged images are dropped", settings.safety_checker)
    log.info(
        "%s: %s + %s (%s) on %s in %s, %d steps, guidance %.1f, conditioning %.2f, batch %d",
        backend,
        settings.base_model,
        settings.condition_model,
        settings.conditioning,
        device,
        str(dtype).removeprefix("torch."),
        settings.steps,
        settings.guidance_scale,
        settings.conditioning_scale,
        settings.batch_size,
    )

    counts: Counter = Counter()
    ext = settings.image_format
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    for stray in ctx.work_dir.glob(".*"):  # temp files of writes a kill interrupted (io.atomic_path)
        if stray.is_file():
            stray.unlink()
    samples = collect_samples(ctx, size_multiple(pipe), settings.max_side, counts)
    scener = None
    if settings.head_mesh:
        from ..headmodel import load_head_model
        from .procedural import DEFAULTS
        from .scene_conditions import SceneConditioner

        scene_keys(samples, ctx.params, ctx.head_model, settings.maps)
        scener = SceneConditioner(
            load_head_model(ctx.head_model),
            {**DEFAULTS, **(ctx.params["render"].get("procedural") or {})},
            float((ctx.params.get("poses") or {}).get("min_confidence", 0.3)),
        )
        log.info(
            "head-mesh: scenes from %s (rasteriser %s), condition maps %s%s",
            ctx.head_model,
            scener.gl_renderer,
            "+".join(settings.maps),
            {"pose+head-mesh": " + the skeleton", "head-mesh": ""}[settings.conditioning],
        )
    records: dict[str, dict] = {}
    todo, recheck = [], []
    for s in samples:
        s.key = image_key(settings, device, dtype, s)
        record = _load_record(ctx.work_dir, s, ext)
        if record is None or (record["nsfw"] and record.get("checked_by") != settings.safety_checker):
            todo.append(s)  # new, stale, or flagged by a checker no longer configured
        elif record.get("checked_by") != settings.safety_checker:
            recheck.append((s, record))
        else:
            records[s.sample_id] = record
    counts["reused"] = len(records) + len(recheck)
    if recheck and checker is not None:
        from PIL import Image

        for s, record in recheck:
            with Image.open(ctx.work_dir / f"{s.sample_id}.{ext}") as im:
                record["nsfw"] = checker([im.convert("RGB")])[0]
    for s, record in recheck:
        record["checked_by"] = settings.safety_checker
        _write_record(ctx.work_dir, s.sample_id, record)
        records[s.sample_id] = record
    if counts["reused"]:
        log.info("resuming: %d of %d samples already rendered in %s", counts["reused"], len(samples), ctx.work_dir)

    render_start = time.perf_counter()
    with tqdm(total=len(todo), desc=f"{backend} {ctx.shard}", unit="img", file=sys.stderr) as bar:
        for batch in _batches(todo, settings.batch_size):
            if scener is not None:
                for s in batch:
                    s.scene = scener(s.persons, s.canvas, (s.width, s.height), s.seed, settings.maps)
            images = generate(pipe, settings, batch)
            flags = checker(images) if checker is not None else [False] * len(batch)
            for s, image, nsfw in zip(batch, images, flags):
                if not nsfw:
                    _save_image(image, ctx.work_dir / f"{s.sample_id}.{ext}", ext)
                record = {
                    "key": s.key,
                    "nsfw": nsfw,
                    "checked_by": settings.safety_checker,
                    "row": _row(settings, s, ext),
                }
                if s.scene is not None:
                    record["scene"] = {k: int(v) for k, v in s.scene.counts.items()}
                    if not nsfw:  # the truth goes with the image: written before the record that commits both
                        record["heads"] = f"{s.sample_id}.heads.npz"
                        _save_heads(ctx.work_dir / record["heads"], s.sample_id, s.scene.heads)
                    s.scene = None
                _write_record(ctx.work_dir, s.sample_id, record)
                records[s.sample_id] = record
            counts["rendered"] += len(batch)
            bar.update(len(batch))
    render_s = time.perf_counter() - render_start

    rows, heads = [], []
    scene_counts: Counter = Counter()
    for s in samples:
        record = records[s.sample_id]
        if record["nsfw"]:
            counts["dropped_nsfw"] += 1
            continue
        _link(ctx.work_dir / f"{s.sample_id}.{ext}", ctx.images_dir / f"{s.sample_id}.{ext}")
        rows.append(record["row"])
        if scener is not None:
            heads += _load_heads(ctx.work_dir / record["heads"])
            scene_counts.update(record.get("scene") or {})
    stats = {
        "captions": ctx.captions.num_rows,
        "samples": len(samples),
        "rendered": counts["rendered"],
        "reused": counts["reused"],
        "dropped_no_pose": counts["dropped_no_pose"],
        "dropped_missing_condition": counts["dropped_missing_condition"],
        "dropped_nsfw": counts["dropped_nsfw"],
        "safety_checker": settings.safety_checker or "off",
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "steps": settings.steps,
        "batch_size": settings.batch_size,
        "load_seconds": round(load_s, 3),
        "render_seconds": round(render_s, 3),
        "seconds_per_image": round(render_s / counts["rendered"], 4) if counts["rendered"] else None,
        "conditioning": settings.conditioning,
    }
    if scener is not None:
        stats["maps"] = list(settings.maps)
        stats["gl_renderer"] = scener.gl_renderer
        stats.update(
            {
                f"scene_{k}": int(scene_counts.get(k, 0))
                for k in ("persons", "heads", "no_head_keypoints", "occluded", "outside")
            }
        )
    log.info(
        "%d images (%d rendered now, %d reused, %d NSFW dropped)",
        len(rows),
        counts["rendered"],
        counts["reused"],
        counts["dropped_nsfw"],
    )
    return RenderResult(images=rows, heads=heads, stats=stats)


HEAD_FIELDS = ("head", "box", "flame_params", "landmarks", "yaw", "pitch", "roll", "visible_fraction")


def _save_heads(path: Path, sample_id: str, truth: list) -> None:
    """One image's scene truth (rows of ``render_heads`` as the procedural backend makes them), as .npz."""
    import numpy as np

    from ..io import atomic_path
    from .truth_rows import head_rows

    rows = head_rows(sample_id, truth)
    arrays = {f: np.asarray([r[f] for r in rows], dtype=np.int32 if f == "head" else np.float32) for f in HEAD_FIELDS}
    arrays["box"] = arrays["box"].reshape(-1, 4)
    arrays["flame_params"] = arrays["flame_params"].reshape(-1, 413)
    arrays["landmarks"] = arrays["landmarks"].reshape(-1, 68, 3)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, sample_id=np.array(sample_id), **arrays)


def _load_heads(path: Path) -> list[dict]:
    import numpy as np

    with np.load(path) as z:
        sid = str(z["sample_id"])
        cols = {f: z[f] for f in HEAD_FIELDS}
    return [
        {"sample_id": sid, **{f: (cols[f][i] if cols[f].ndim > 1 else cols[f][i].item()) for f in HEAD_FIELDS}}
        for i in range(len(cols["head"]))
    ]


def _row(settings: SdxlSettings, s: Sample, ext: str) -> dict:
    return {
        "sample_id": s.sample_id,
        "image": f"{s.sample_id}.{ext}",
        "width": s.width,
        "height": s.height,
        "backend": settings.backend,
        "seed": s.seed,
        "prompt": s.prompt,
        "negative_prompt": s.negative_prompt,
        "base_model": settings.base_model,
        "condition_model": settings.condition_model,
    }


def _write_record(work_dir: Path, sample_id: str, record: dict) -> None:
    from ..io import write_json

    write_json(_record_path(work_dir, sample_id), record)


__all__ = ["render_shard", "render_size", "generate", "collect_samples", "image_key", "scene_keys", "Sample"]
