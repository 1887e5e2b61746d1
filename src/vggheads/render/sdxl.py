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
openpose T2I-Adapter (:class:`AdapterInjector`) or one more ControlNet, and the heads table is the
scene's exact truth, written as the procedural backend writes it.

``tiny-sdxl`` is the same code with the tiny random-weight model of
:mod:`vggheads.render.tiny_sdxl`: its directories go through :func:`load_pipeline` exactly like
real weights.

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
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, MissingWeightsError
from . import RenderContext, RenderResult

log = logging.getLogger(__name__)

RECORD_VERSION = 1
HEAD_MESH_MODES = ("head-mesh", "pose+head-mesh")
JPEG_QUALITY = 95
SCHEDULERS = {  # name -> DPMSolverMultistepScheduler overrides of the base model's scheduler config
    "dpmpp-sde-karras": {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    "dpmpp-2m-karras": {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
}
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class SdxlSettings:
    """What the backend needs from ``render.sdxl`` (tiny-sdxl: models and sizes from ``tiny``)."""

    backend: str
    base_model: str
    conditioning: str            # adapter | controlnet | head-mesh | pose+head-mesh
    condition_model: str         # the adapter and/or ControlNets used, "+"-joined
    vae: str | None
    variant: str | None
    safety_checker: str | None
    scheduler: str
    steps: int
    guidance_scale: float
    conditioning_scale: float
    max_side: int | None
    batch_size: int
    device: str
    dtype: str
    channels_last: bool
    compile: bool
    vae_tiling: bool
    image_format: str
    adapter: str | None = None                          # the openpose T2I-Adapter, when the pose goes through one
    controlnets: tuple[tuple[str, str], ...] = ()       # (condition, model) per ControlNet: pose, pncc, depth
    scales: tuple[tuple[str, float], ...] = ()          # (condition, conditioning scale)
    maps: tuple[str, ...] = ()                          # the scene's condition images (head-mesh modes)

    @property
    def head_mesh(self) -> bool:
        return self.conditioning in HEAD_MESH_MODES

    def scale(self, condition: str) -> float:
        return dict(self.scales)[condition]

    @classmethod
    def from_params(cls, params: dict, backend: str) -> "SdxlSettings":
        cfg = (params.get("render") or {}).get("sdxl")
        if not cfg:
            raise ConfigError(f"render.backend is '{backend}' but params have no render.sdxl section "
                              f"(copy it from the repository's params.yaml)")
        cfg = dict(cfg)
        if backend == "tiny-sdxl":
            from .tiny_sdxl import tiny_paths

            tiny = cfg["tiny"]
            paths = tiny_paths(tiny["model_dir"])
            cfg.update(base_model=str(paths["base"]), adapter=str(paths["adapter"]),
                       controlnet=str(paths["controlnet"]), vae=None, variant=None,
                       steps=tiny["steps"], max_side=tiny["max_side"])
            cfg["head_mesh"] = dict(cfg.get("head_mesh") or {}, pncc_controlnet=str(paths["pncc_controlnet"]),
                                    depth_controlnet=str(paths["depth_controlnet"]))
        cond = cfg["conditioning"]
        scale = float(cfg["conditioning_scale"])
        if cond in HEAD_MESH_MODES:
            hm = cfg.get("head_mesh")
            if not hm:
                raise ConfigError(f"render.sdxl.conditioning is '{cond}' but params have no render.sdxl.head_mesh "
                                  f"section (copy it from the repository's params.yaml)")
            maps = tuple(hm["maps"])
            pose = hm["pose"] if cond == "pose+head-mesh" else None
            scales = {"pose": scale, **{m: float(hm[f"{m}_scale"]) for m in maps}}
        else:
            maps, pose, scales = (), cond, {"pose": scale}
        adapter = cfg["adapter"] if pose == "adapter" else None
        controlnets = tuple(([("pose", cfg["controlnet"])] if pose == "controlnet" else [])
                            + [(m, cfg["head_mesh"][f"{m}_controlnet"]) for m in maps])
        condition_model = "+".join(([adapter] if adapter else []) + [ref for _, ref in controlnets])
        return cls(backend=backend, base_model=cfg["base_model"], conditioning=cond,
                   condition_model=condition_model, adapter=adapter, controlnets=controlnets,
                   scales=tuple((c, scales[c]) for c in (["pose"] if pose else []) + list(maps)), maps=maps,
                   vae=cfg["vae"], variant=cfg["variant"], safety_checker=cfg["safety_checker"],
                   scheduler=cfg["scheduler"], steps=cfg["steps"], guidance_scale=float(cfg["guidance_scale"]),
                   conditioning_scale=float(cfg["conditioning_scale"]), max_side=cfg["max_side"],
                   batch_size=cfg["batch_size"], device=cfg["device"], dtype=cfg["dtype"],
                   channels_last=cfg["channels_last"], compile=cfg["compile"], vae_tiling=cfg["vae_tiling"],
                   image_format=cfg["image_format"])


# ---------------------------------------------------------------------------------------------
# loading


def _how_to_fetch(ref: str, key: str, backend: str) -> str:
    if backend == "tiny-sdxl" and key != "render.sdxl.safety_checker":
        return ("Build the tiny model with `vggheads build-tiny-sdxl --out DIR` (the pipeline's rule "
                "build_tiny_sdxl does it) and point render.sdxl.tiny.model_dir at DIR.")
    repo = ref if _REPO_ID.match(ref) else "<model id>"
    return (f"Nothing is downloaded at run time: on a machine with internet run `hf download {repo}` "
            f"(huggingface_hub < 1.0: `huggingface-cli download {repo}`), which fills the Hugging Face cache "
            f"(~/.cache/huggingface/hub, or $HF_HOME/hub); copy that cache here or point HF_HOME at it; "
            f"or set {key} to a local diffusers directory.")


def _model_key(backend: str, key: str) -> str:
    """The params key a user edits for a model: tiny-sdxl takes all but the checker from one directory."""
    if backend == "tiny-sdxl" and key != "render.sdxl.safety_checker":
        return "render.sdxl.tiny.model_dir"
    return key


def resolve_model(ref: str, what: str, key: str, backend: str = "sdxl") -> Path:
    """A model reference (local directory, or Hugging Face id in the local cache) as a local directory.

    Never touches the network; raises :class:`MissingWeightsError` naming ``ref`` and how to get it.
    """
    key = _model_key(backend, key)
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise MissingWeightsError(f"{what} ({key})", path, "Expected a diffusers/transformers model directory, "
                                  "found a file. " + _how_to_fetch(ref, key, backend))
    if _REPO_ID.match(ref):
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(ref, local_files_only=True))
        except LocalEntryNotFoundError:
            cached = Path(constants.HF_HUB_CACHE) / f"models--{ref.replace('/', '--')}"
            raise MissingWeightsError(f"{what} '{ref}' ({key}: not a local directory, and not in the "
                                      f"Hugging Face cache)", cached, _how_to_fetch(ref, key, backend)) from None
    raise MissingWeightsError(f"{what} ({key})", path, _how_to_fetch(ref, key, backend))


def resolve_device(name: str) -> "torch.device":  # noqa: F821
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"render.sdxl.device is '{name}' but torch sees no CUDA device "
                          f"(use device: auto or cpu, or run on a GPU node)")
    return torch.device(name)


def resolve_dtype(name: str, device) -> "torch.dtype":  # noqa: F821
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def _from_pretrained(cls, path: Path, what: str, key: str, backend: str, **kwargs):
    key = _model_key(backend, key)
    try:
        return cls.from_pretrained(path, local_files_only=True, **kwargs)
    except OSError as exc:  # incomplete snapshot or directory: a file the config names is missing
        detail = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise MissingWeightsError(f"a file of the {what} ({key})", path,
                                  f"{detail}. " + _how_to_fetch(str(path), key, backend)) from None


def load_pipeline(settings: SdxlSettings, device=None, dtype=None):
    """The diffusers pipeline for ``settings``, on ``device`` in ``dtype``, optimised as configured.

    Real weights and the tiny model take this same path: resolve each reference to a local
    directory, ``from_pretrained(..., local_files_only=True)``, swap in the configured DPM-Solver++.
    """
    from ..offline import configure

    configure()  # before diffusers/transformers read their offline switches
    from diffusers import (AutoencoderKL, ControlNetModel, DPMSolverMultistepScheduler,
                           StableDiffusionXLAdapterPipeline, StableDiffusionXLControlNetPipeline, T2IAdapter)

    device = device if device is not None else resolve_device(settings.device)
    dtype = dtype if dtype is not None else resolve_dtype(settings.dtype, device)
    b = settings.backend
    base_dir = resolve_model(settings.base_model, "SDXL base model", "render.sdxl.base_model", b)
    extra = {}
    adapter = None
    if settings.adapter:
        cond_dir = resolve_model(settings.adapter, "T2I-Adapter", "render.sdxl.adapter", b)
        adapter = _from_pretrained(T2IAdapter, cond_dir, "T2I-Adapter", "render.sdxl.adapter", b, dtype=dtype)
    if not settings.controlnets:
        extra["adapter"] = adapter
        pipeline_cls = StableDiffusionXLAdapterPipeline
    else:
        nets = []
        for condition, ref in settings.controlnets:
            key, what = CONTROLNET_KEYS[condition]
            cond_dir = resolve_model(ref, what, key, b)
            nets.append(_from_pretrained(ControlNetModel, cond_dir, what, key, b, dtype=dtype))
        extra["controlnet"] = nets[0] if len(nets) == 1 else nets  # a list: diffusers' MultiControlNetModel
        pipeline_cls = StableDiffusionXLControlNetPipeline
    if settings.vae:
        vae_dir = resolve_model(settings.vae, "VAE", "render.sdxl.vae", b)
        extra["vae"] = _from_pretrained(AutoencoderKL, vae_dir, "VAE", "render.sdxl.vae", b, dtype=dtype)
    if settings.variant:
        extra["variant"] = settings.variant
    pipe = _from_pretrained(pipeline_cls, base_dir, "SDXL base model", "render.sdxl.base_model", b,
                            dtype=dtype, **extra)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, **SCHEDULERS[settings.scheduler])
    pipe.to(device)
    if adapter is not None and settings.controlnets:  # pose+head-mesh with the pose through the adapter
        AdapterInjector(pipe, adapter.to(device))
    pipe.set_progress_bar_config(disable=True)  # one bar over the shard's samples instead
    if len(settings.controlnets) > 1:
        _quiet_multicontrolnet_warning()
    optimize_pipeline(pipe, channels_last=settings.channels_last, compile=settings.compile,
                      vae_tiling=settings.vae_tiling)
    return pipe


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _quiet_multicontrolnet_warning() -> None:
    """diffusers warns on every call with several ControlNets and a list of prompts that "the
    conditionings will be fixed across the prompts": true of a single condition image, not of the
    (B, 3, H, W) batches passed here (one image per prompt, checked against the batch size)."""
    logger = logging.getLogger("diffusers.pipelines.controlnet.pipeline_controlnet_sd_xl")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage("The conditionings will be fixed across the prompts"))


# condition -> (params key, what) of its ControlNet, for loading and error messages
CONTROLNET_KEYS = {
    "pose": ("render.sdxl.controlnet", "openpose ControlNet"),
    "pncc": ("render.sdxl.head_mesh.pncc_controlnet", "head-mesh (PNCC) ControlNet"),
    "depth": ("render.sdxl.head_mesh.depth_controlnet", "depth ControlNet"),
}


class AdapterInjector:
    """A T2I-Adapter inside the ControlNet pipeline (``pose+head-mesh`` with ``head_mesh.pose: adapter``).

    diffusers has no core pipeline for adapter + ControlNet, but the UNet takes both at once: the
    ControlNets' residuals (``down_block_additional_residuals``) and the adapter's features
    (``down_intrablock_additional_residuals``). A forward pre-hook on the UNet adds the adapter's
    features, computed once per batch, scaled and repeated for classifier-free guidance, to every
    denoising step, exactly as ``StableDiffusionXLAdapterPipeline`` does (at
    ``adapter_conditioning_factor`` 1). The adapter runs once per image, not once per step.
    """

    def __init__(self, pipe, adapter):
        self.adapter = adapter
        self.states = None
        self.handle = pipe.unet.register_forward_pre_hook(self._hook, with_kwargs=True)
        pipe.vggheads_adapter = self  # for generate() and size_multiple()

    def _hook(self, module, args, kwargs):
        if self.states is None:
            return None
        sample = args[0] if args else kwargs["sample"]
        reps = sample.shape[0] // self.states[0].shape[0]
        kwargs = dict(kwargs)
        kwargs["down_intrablock_additional_residuals"] = [s.repeat(reps, 1, 1, 1) for s in self.states]
        return args, kwargs

    def set(self, images: list, scale: float, device, dtype) -> None:
        """The adapter's features for a batch of condition images (PIL, at the render size)."""
        import torch

        with torch.inference_mode():
            self.states = [s * scale for s in self.adapter(_as_batch(images).to(device, self.adapter.dtype))]

    def clear(self) -> None:
        self.states = None


def optimize_pipeline(pipe, *, channels_last: bool, compile: bool, vae_tiling: bool) -> None:
    """Speed settings that leave the maths unchanged (SDPA attention is diffusers' default)."""
    import torch

    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        if getattr(pipe, "controlnet", None) is not None:
            pipe.controlnet.to(memory_format=torch.channels_last)
    if vae_tiling:
        pipe.vae.enable_tiling()
    if compile:
        pipe.unet.compile()


def size_multiple(pipe) -> int:
    """Image sides must be multiples of this: VAE factor x UNet downsampling (x adapter's own)."""
    mult = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    adapter = getattr(pipe, "adapter", None)
    if adapter is None and getattr(pipe, "vggheads_adapter", None) is not None:
        adapter = pipe.vggheads_adapter.adapter
    if adapter is not None:
        mult = math.lcm(mult, adapter.total_downscale_factor)
    return mult


def render_size(canvas_w: int, canvas_h: int, multiple: int, max_side: int | None) -> tuple[int, int]:
    """The pose canvas scaled down to ``max_side`` (long side) and rounded to ``multiple`` (>= one)."""
    scale = min(1.0, max_side / max(canvas_w, canvas_h)) if max_side else 1.0
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (canvas_w, canvas_h))


# ---------------------------------------------------------------------------------------------
# safety checking


class SafetyChecker:
    """The paper's NSFW filter (its first half): diffusers' ``StableDiffusionSafetyChecker``."""

    def __init__(self, ref: str, device, dtype, backend: str):
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessor

        key = "render.sdxl.safety_checker"
        path = resolve_model(ref, "safety checker", key, backend)
        self.processor = _from_pretrained(CLIPImageProcessor, path, "safety checker preprocessor", key, backend)
        self.model = _from_pretrained(StableDiffusionSafetyChecker, path, "safety checker", key, backend,
                                      dtype=dtype).to(device).eval()
        self.device, self.dtype = device, dtype

    def __call__(self, images: list) -> list[bool]:
        """True for each PIL image the checker flags."""
        import numpy as np
        import torch

        pixels = self.processor(images, return_tensors="pt").pixel_values.to(self.device, self.dtype)
        arrays = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])
        with torch.no_grad():
            _, flags = self.model(clip_input=pixels, images=arrays)
        return [bool(f) for f in flags]


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
    canvas: tuple[int, int] = (0, 0)                 # the pose canvas (width, height)
    persons: list = field(default_factory=list)      # (person, (17, 3) COCO keypoints in canvas pixels)
    scene_key: str = ""                              # head-mesh modes: what decides the scene (and its truth)
    scene: object = None                             # head-mesh modes: its SceneConditions while it renders


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def image_key(settings: SdxlSettings, device, dtype, sample: Sample) -> str:
    """What decides a sample's pixels; a record with another key is stale and the sample is redone."""
    blob = {
        "version": RECORD_VERSION,
        "models": [settings.base_model, settings.conditioning, settings.condition_model, settings.vae,
                   settings.variant],
        "sampling": [settings.scheduler, settings.steps, settings.guidance_scale, settings.conditioning_scale],
        "hardware": [device.type, str(dtype)],
        "format": settings.image_format,
        "sample": [sample.prompt, sample.negative_prompt, sample.seed, sample.width, sample.height,
                   _file_digest(sample.condition)],
    }
    if settings.head_mesh:
        blob["head_mesh"] = [settings.adapter, [list(c) for c in settings.controlnets], [list(c) for c in settings.scales],
                             sample.scene_key]
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def scene_keys(samples: list[Sample], params: dict, head_model: Path, maps: tuple[str, ...]) -> None:
    """Set each sample's ``scene_key``: a digest of what decides its procedural scene (keypoints,
    canvas, render.procedural, poses.min_confidence, the head-model file, the maps)."""
    from .procedural import DEFAULTS

    base = json.dumps({"procedural": {**DEFAULTS, **(params["render"].get("procedural") or {})},
                       "min_confidence": float((params.get("poses") or {}).get("min_confidence", 0.3)),
                       "head_model": _file_digest(Path(head_model)), "maps": list(maps)}, sort_keys=True)
    for s in samples:
        h = hashlib.sha256(base.encode())
        h.update(json.dumps([s.canvas, [[p, [round(float(v), 4) for v in kp.ravel()]] for p, kp in s.persons]]).encode())
        s.scene_key = h.hexdigest()[:20]


def collect_samples(ctx: RenderContext, multiple: int, max_side: int | None, counts: dict) -> list[Sample]:
    """One sample per caption with a condition image; the others are counted drops."""
    import numpy as np

    canvas, persons = {}, {}
    for row in ctx.poses.select(["sample_id", "person", "width", "height", "keypoints", "condition_image"]).to_pylist():
        canvas.setdefault(row["sample_id"], row)
        persons.setdefault(row["sample_id"], []).append(
            (int(row["person"]), np.asarray(row["keypoints"], dtype=np.float64).reshape(17, 3)))
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
        samples.append(Sample(cap["sample_id"], cap["prompt"], cap["negative_prompt"] or "", int(cap["seed"]),
                              condition, w, h, canvas=(int(pose["width"]), int(pose["height"])),
                              persons=sorted(persons[cap["sample_id"]], key=lambda p: p[0])))
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
    return [group[i:i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


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
        out["pose"] = [Image.open(s.condition).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
                       for s in batch]
    for m in settings.maps:
        out[m] = [Image.fromarray(s.scene.maps[m]) for s in batch]
    return out


def _as_batch(images: list) -> "torch.Tensor":  # noqa: F821
    """PIL images -> (B, 3, H, W) float32 in [0, 1], the values diffusers' image processors make of them."""
    import numpy as np
    import torch

    return torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images]).transpose(0, 3, 1, 2))


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
            kwargs = {"image": [_as_batch(images[c]) for c in conds],   # (it takes no nested lists of images)
                      "controlnet_conditioning_scale": [settings.scale(c) for c in conds]}
        if injector is not None:
            injector.set(images["pose"], settings.scale("pose"), pipe.device, pipe.unet.dtype)
    generators = [torch.Generator("cpu").manual_seed(s.seed) for s in batch]
    try:
        with torch.inference_mode():
            out = pipe(prompt=[s.prompt for s in batch], negative_prompt=[s.negative_prompt for s in batch],
                       height=height, width=width, num_inference_steps=steps or settings.steps,
                       guidance_scale=settings.guidance_scale, generator=generators, output_type="pil", **kwargs)
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
    log.info("%s: %s + %s (%s) on %s in %s, %d steps, guidance %.1f, conditioning %.2f, batch %d",
             backend, settings.base_model, settings.condition_model, settings.conditioning, device,
             str(dtype).removeprefix("torch."), settings.steps, settings.guidance_scale,
             settings.conditioning_scale, settings.batch_size)

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
        scener = SceneConditioner(load_head_model(ctx.head_model),
                                  {**DEFAULTS, **(ctx.params["render"].get("procedural") or {})},
                                  float((ctx.params.get("poses") or {}).get("min_confidence", 0.3)))
        log.info("head-mesh: scenes from %s (rasteriser %s), condition maps %s%s", ctx.head_model,
                 scener.gl_renderer, "+".join(settings.maps),
                 {"pose+head-mesh": " + the skeleton", "head-mesh": ""}[settings.conditioning])
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
                record = {"key": s.key, "nsfw": nsfw, "checked_by": settings.safety_checker,
                          "row": _row(settings, s, ext)}
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
        "captions": ctx.captions.num_rows, "samples": len(samples), "rendered": counts["rendered"],
        "reused": counts["reused"], "dropped_no_pose": counts["dropped_no_pose"],
        "dropped_missing_condition": counts["dropped_missing_condition"], "dropped_nsfw": counts["dropped_nsfw"],
        "safety_checker": settings.safety_checker or "off", "device": str(device),
        "dtype": str(dtype).removeprefix("torch."), "steps": settings.steps, "batch_size": settings.batch_size,
        "load_seconds": round(load_s, 3), "render_seconds": round(render_s, 3),
        "seconds_per_image": round(render_s / counts["rendered"], 4) if counts["rendered"] else None,
        "conditioning": settings.conditioning,
    }
    if scener is not None:
        stats["maps"] = list(settings.maps)
        stats["gl_renderer"] = scener.gl_renderer
        stats.update({f"scene_{k}": int(scene_counts.get(k, 0))
                      for k in ("persons", "heads", "no_head_keypoints", "occluded", "outside")})
    log.info("%d images (%d rendered now, %d reused, %d NSFW dropped)", len(rows), counts["rendered"],
             counts["reused"], counts["dropped_nsfw"])
    return RenderResult(images=rows, heads=heads, stats=stats)


HEAD_FIELDS = ("head", "box", "flame_params", "landmarks", "yaw", "pitch", "roll", "visible_fraction")


def _save_heads(path: Path, sample_id: str, truth: list) -> None:
    """One image's scene truth (rows of ``render_heads`` as the procedural backend makes them), as .npz."""
    import numpy as np

    from ..io import atomic_path
    from .procedural import head_rows

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
    return [{"sample_id": sid, **{f: (cols[f][i] if cols[f].ndim > 1 else cols[f][i].item()) for f in HEAD_FIELDS}}
            for i in range(len(cols["head"]))]


def _row(settings: SdxlSettings, s: Sample, ext: str) -> dict:
    return {"sample_id": s.sample_id, "image": f"{s.sample_id}.{ext}", "width": s.width, "height": s.height,
            "backend": settings.backend, "seed": s.seed, "prompt": s.prompt, "negative_prompt": s.negative_prompt,
            "base_model": settings.base_model, "condition_model": settings.condition_model}


def _write_record(work_dir: Path, sample_id: str, record: dict) -> None:
    from ..io import write_json

    write_json(_record_path(work_dir, sample_id), record)


__all__ = ["SdxlSettings", "load_pipeline", "optimize_pipeline", "render_shard", "render_size", "resolve_model",
           "size_multiple", "generate", "SafetyChecker", "AdapterInjector", "HEAD_MESH_MODES"]
