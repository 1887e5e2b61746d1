"""The tiny random-weight SDXL artifact: built once from configs, saved like a Hugging Face model.

Layout of the directory (each part is what ``save_pretrained`` writes, i.e. what the real model
repositories hold, so the ``sdxl`` backend loads it with the very same code)::

    base/            StableDiffusionXLPipeline: unet, vae, text_encoder(_2), tokenizer(_2), scheduler
    t2i-adapter/     T2IAdapter (full_adapter_xl), the paper's conditioning
    controlnet/      ControlNetModel (openpose), the alternative conditioning
    controlnet-pncc/ ControlNetModel for PNCC renders of the scene's heads (conditioning head-mesh)
    controlnet-depth/ ControlNetModel for depth maps of the scene (conditioning head-mesh)
    safety-checker/  StableDiffusionSafetyChecker + CLIPImageProcessor (flags nothing: thresholds at 1)
    build.json       what was built, with which seed and library versions

The images it renders are noise-like (random weights); the point is the code path. The
ControlNets' zero convolutions get small random weights (:data:`LIVE_STD`) so that each condition
changes the pixels, as a trained one does (freshly initialised, a ControlNet adds exactly zero).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

PARTS = {
    "base": "base",
    "adapter": "t2i-adapter",
    "controlnet": "controlnet",
    "pncc_controlnet": "controlnet-pncc",
    "depth_controlnet": "controlnet-depth",
    "safety_checker": "safety-checker",
}
LIVE_STD = 0.05


def tiny_paths(model_dir: str | Path) -> dict[str, Path]:
    """Where each part of a tiny-SDXL directory lives."""
    return {key: Path(model_dir) / name for key, name in PARTS.items()}


def _tiny_safety_checker():
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(text_config=small, vision_config=dict(small, image_size=32, patch_size=8), projection_dim=32)
    checker = StableDiffusionSafetyChecker(config).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, processor


def build_tiny_sdxl(out: str | Path, seed: int = 0) -> Path:
    """Build the tiny SDXL (+ adapter, ControlNets, safety checker) and save it atomically at ``out``."""
    import diffusers
    import torch
    import transformers
    from diffusers import StableDiffusionXLPipeline

    from ..io import atomic_dir, write_json
    from .sdxl_arch import build_components, count_parameters

    components = build_components(
        "tiny", seed=seed, conditioning=("adapter", "controlnet", "pncc", "depth"), live_controlnets=LIVE_STD
    )
    counts = count_parameters(components)
    adapter = components.pop("adapter")
    controlnet = components.pop("controlnet")
    pncc = components.pop("controlnet_pncc")
    depth = components.pop("controlnet_depth")
    checker, processor = _tiny_safety_checker()
    out = Path(out)
    with atomic_dir(out) as tmp:
        paths = tiny_paths(tmp)
        StableDiffusionXLPipeline(**components).save_pretrained(paths["base"])
        adapter.save_pretrained(paths["adapter"])
        controlnet.save_pretrained(paths["controlnet"])
        pncc.save_pretrained(paths["pncc_controlnet"])
        depth.save_pretrained(paths["depth_controlnet"])
        checker.save_pretrained(paths["safety_checker"])
        processor.save_pretrained(paths["safety_checker"])
        write_json(
            tmp / "build.json",
            {
                "what": "tiny random-weight SDXL for tests and CPU runs (vggheads build-tiny-sdxl)",
                "seed": seed,
                "parameters": counts,
                "parameters_total": sum(counts.values()),
                "diffusers": diffusers.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
        )
    log.info("tiny SDXL (%.2f M parameters) written to %s", sum(counts.values()) / 1e6, out)
    return out
