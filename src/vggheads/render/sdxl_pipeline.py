"""Getting a ready diffusers pipeline for the ``sdxl`` and ``tiny-sdxl`` render backends.

:class:`SdxlSettings` (what the backend reads from ``render.sdxl``), the offline loader
(:func:`resolve_model`: a local directory or a Hugging Face id already in the cache, never the
network; :func:`load_pipeline`: the adapter or (multi-)ControlNet pipeline with the configured
DPM-Solver++, optimised as configured), :class:`AdapterInjector` (the openpose T2I-Adapter inside
the ControlNet pipeline, ``pose+head-mesh``), :func:`size_multiple`, and the NSFW
:class:`SafetyChecker`. The shard loop that runs the pipeline is :mod:`vggheads.render.sdxl`.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, MissingWeightsError

HEAD_MESH_MODES = ("head-mesh", "pose+head-mesh")
SCHEDULERS = {  # name -> DPMSolverMultistepScheduler overrides of the base model's scheduler config
    "dpmpp-sde-karras": {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    "dpmpp-2m-karras": {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class SdxlSettings:
    """What the backend needs from ``render.sdxl`` (tiny-sdxl: models and sizes from ``tiny``)."""

    backend: str
    base_model: str
    conditioning: str  # adapter | controlnet | head-mesh | pose+head-mesh
    condition_model: str  # the adapter and/or ControlNets used, "+"-joined
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
    adapter: str | None = None  # the openpose T2I-Adapter, when the pose goes through one
    controlnets: tuple[tuple[str, str], ...] = ()  # (condition, model) per ControlNet: pose, pncc, depth
    scales: tuple[tuple[str, float], ...] = ()  # (condition, conditioning scale)
    maps: tuple[str, ...] = ()  # the scene's condition images (head-mesh modes)

    @property
    def head_mesh(self) -> bool:
        return self.conditioning in HEAD_MESH_MODES

    def scale(self, condition: str) -> float:
        return dict(self.scales)[condition]

    @classmethod
    def from_params(cls, params: dict, backend: str) -> "SdxlSettings":
        cfg = (params.get("render") or {}).get("sdxl")
        if not cfg:
            raise ConfigError(
                f"render.backend is '{backend}' but params have no render.sdxl section "
                f"(copy it from the repository's params.yaml)"
            )
        cfg = dict(cfg)
        if backend == "tiny-sdxl":
            from .tiny_sdxl import tiny_paths

            tiny = cfg["tiny"]
            paths = tiny_paths(tiny["model_dir"])
            cfg.update(
                base_model=str(paths["base"]),
                adapter=str(paths["adapter"]),
                controlnet=str(paths["controlnet"]),
                vae=None,
                variant=None,
                steps=tiny["steps"],
                max_side=tiny["max_side"],
            )
            cfg["head_mesh"] = dict(
                cfg.get("head_mesh") or {},
                pncc_controlnet=str(paths["pncc_controlnet"]),
                depth_controlnet=str(paths["depth_controlnet"]),
            )
        cond = cfg["conditioning"]
        scale = float(cfg["conditioning_scale"])
        if cond in HEAD_MESH_MODES:
            hm = cfg.get("head_mesh")
            if not hm:
                raise ConfigError(
                    f"render.sdxl.conditioning is '{cond}' but params have no render.sdxl.head_mesh "
                    f"section (copy it from the repository's params.yaml)"
                )
            maps = tuple(hm["maps"])
            pose = hm["pose"] if cond == "pose+head-mesh" else None
            scales = {"pose": scale, **{m: float(hm[f"{m}_scale"]) for m in maps}}
        else:
            maps, pose, scales = (), cond, {"pose": scale}
        adapter = cfg["adapter"] if pose == "adapter" else None
        controlnets = tuple(
            ([("pose", cfg["controlnet"])] if pose == "controlnet" else [])
            + [(m, cfg["head_mesh"][f"{m}_controlnet"]) for m in maps]
        )
        condition_model = "+".join(([adapter] if adapter else []) + [ref for _, ref in controlnets])
        return cls(
            backend=backend,
            base_model=cfg["base_model"],
            conditioning=cond,
            condition_model=condition_model,
            adapter=adapter,
            controlnets=controlnets,
            scales=tuple((c, scales[c]) for c in (["pose"] if pose else []) + list(maps)),
            maps=maps,
            vae=cfg["vae"],
            variant=cfg["variant"],
            safety_checker=cfg["safety_checker"],
            scheduler=cfg["scheduler"],
            steps=cfg["steps"],
            guidance_scale=float(cfg["guidance_scale"]),
            conditioning_scale=float(cfg["conditioning_scale"]),
            max_side=cfg["max_side"],
            batch_size=cfg["batch_size"],
            device=cfg["device"],
            dtype=cfg["dtype"],
            channels_last=cfg["channels_last"],
            compile=cfg["compile"],
            vae_tiling=cfg["vae_tiling"],
            image_format=cfg["image_format"],
        )


# ---------------------------------------------------------------------------------------------
# loading


def _how_to_fetch(ref: str, key: str, backend: str) -> str:
    if backend == "tiny-sdxl" and key != "render.sdxl.safety_checker":
        return (
            "Build the tiny model with `vggheads build-tiny-sdxl --out DIR` (the pipeline's rule "
            "build_tiny_sdxl does it) and point render.sdxl.tiny.model_dir at DIR."
        )
    repo = ref if _REPO_ID.match(ref) else "<model id>"
    return (
        f"Nothing is downloaded at run time: on a machine with internet run `hf download {repo}` "
        f"(huggingface_hub < 1.0: `huggingface-cli download {repo}`), which fills the Hugging Face cache "
        f"(~/.cache/huggingface/hub, or $HF_HOME/hub); copy that cache here or point HF_HOME at it; "
        f"or set {key} to a local diffusers directory."
    )


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
        raise MissingWeightsError(
            f"{what} ({key})",
            path,
            "Expected a diffusers/transformers model directory, found a file. " + _how_to_fetch(ref, key, backend),
        )
    if _REPO_ID.match(ref):
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(ref, local_files_only=True))
        except LocalEntryNotFoundError:
            cached = Path(constants.HF_HUB_CACHE) / f"models--{ref.replace('/', '--')}"
            raise MissingWeightsError(
                f"{what} '{ref}' ({key}: not a local directory, and not in the Hugging Face cache)",
                cached,
                _how_to_fetch(ref, key, backend),
            ) from None
    raise MissingWeightsError(f"{what} ({key})", path, _how_to_fetch(ref, key, backend))


def resolve_device(name: str) -> "torch.device":  # noqa: F821
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"render.sdxl.device is '{name}' but torch sees no CUDA device "
            f"(use device: auto or cpu, or run on a GPU node)"
        )
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
        raise MissingWeightsError(
            f"a file of the {what} ({key})", path, f"{detail}. " + _how_to_fetch(str(path), key, backend)
        ) from None


def load_pipeline(settings: SdxlSettings, device=None, dtype=None):
    """The diffusers pipeline for ``settings``, on ``device`` in ``dtype``, optimised as configured.

    Real weights and the tiny model take this same path: resolve each reference to a local
    directory, ``from_pretrained(..., local_files_only=True)``, swap in the configured DPM-Solver++.
    """
    from ..offline import configure

    configure()  # before diffusers/transformers read their offline switches
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DPMSolverMultistepScheduler,
        StableDiffusionXLAdapterPipeline,
        StableDiffusionXLControlNetPipeline,
        T2IAdapter,
    )

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
    pipe = _from_pretrained(
        pipeline_cls, base_dir, "SDXL base model", "render.sdxl.base_model", b, dtype=dtype, **extra
    )
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, **SCHEDULERS[settings.scheduler])
    pipe.to(device)
    if adapter is not None and settings.controlnets:  # pose+head-mesh with the pose through the adapter
        AdapterInjector(pipe, adapter.to(device))
    pipe.set_progress_bar_config(disable=True)  # one bar over the shard's samples instead
    if len(settings.controlnets) > 1:
        _quiet_multicontrolnet_warning()
    optimize_pipeline(
        pipe, channels_last=settings.channels_last, compile=settings.compile, vae_tiling=settings.vae_tiling
    )
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
            self.states = [s * scale for s in self.adapter(as_batch(images).to(device, self.adapter.dtype))]

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


def as_batch(images: list) -> "torch.Tensor":  # noqa: F821
    """PIL images -> (B, 3, H, W) float32 in [0, 1], the values diffusers' image processors make of them."""
    import numpy as np
    import torch

    return torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images]).transpose(0, 3, 1, 2))


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
        self.model = (
            _from_pretrained(StableDiffusionSafetyChecker, path, "safety checker", key, backend, dtype=dtype)
            .to(device)
            .eval()
        )
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


__all__ = [
    "SdxlSettings",
    "load_pipeline",
    "optimize_pipeline",
    "resolve_model",
    "resolve_device",
    "resolve_dtype",
    "size_multiple",
    "SafetyChecker",
    "AdapterInjector",
    "HEAD_MESH_MODES",
    "CONTROLNET_KEYS",
    "SCHEDULERS",
    "as_batch",
]
