"""SDXL architectures built from configs with random weights: the tiny one and the full-size one.

Both are assembled from the same diffusers / transformers classes as the real checkpoints:

- ``tiny``: a few million parameters; :mod:`vggheads.render.tiny_sdxl` saves it with
  ``save_pretrained`` so the render backend loads it exactly like real weights (tests, CPU runs).
- ``full``: the configs of ``stabilityai/stable-diffusion-xl-base-1.0`` (RealVisXL V4.0 is a
  fine-tune with the same architecture), ``TencentARC/t2i-adapter-openpose-sdxl-1.0`` and an SDXL
  ControlNet (openpose; ``okupyn/head-mesh-controlnet-xl`` and ``diffusers/controlnet-depth-sdxl-1.0``
  have the same architecture). Random weights cost the same compute as trained ones, so
  ``benchmarks/bench_sdxl.py`` measures the real speed without downloading 7 GB.
"""

from __future__ import annotations

from .clip_tokenizer import MAX_LENGTH, VOCAB_SIZE

BOS_ID, EOS_ID = VOCAB_SIZE - 2, VOCAB_SIZE - 1

# SDXL's scheduler config as shipped with the base model (model_index: EulerDiscreteScheduler).
# The backend swaps in DPM-Solver++ from this config, as the paper's code does.
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    interpolation_type="linear",
    timestep_spacing="leading",
    steps_offset=1,
    use_karras_sigmas=False,
)

ARCHS: dict[str, dict] = {
    "tiny": {
        "unet": dict(
            block_out_channels=(32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 size/crop ids x 8 + pooled text (32)
            cross_attention_dim=64,  # the two encoders' hidden states side by side
            norm_num_groups=32,
        ),
        "vae": dict(
            block_out_channels=(32, 64),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            sample_size=64,
            norm_num_groups=32,
            scaling_factor=0.13025,
        ),
        "text_encoder": dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
            hidden_act="quick_gelu",
        ),
        "text_encoder_2": dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
            hidden_act="gelu",
        ),
        # full_adapter_xl: features at pixel/4 = latent/2, where the tiny UNet's second block works.
        "adapter": dict(
            in_channels=3, channels=(32, 64), num_res_blocks=2, downscale_factor=4, adapter_type="full_adapter_xl"
        ),
        # The default embedding (16, 32, 96, 256) downsamples 8x; the 2-block VAE downsamples 2x.
        "controlnet": dict(conditioning_embedding_out_channels=(16, 32)),
    },
    "full": {
        "unet": dict(
            block_out_channels=(320, 640, 1280),
            layers_per_block=2,
            sample_size=128,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(5, 10, 20),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            transformer_layers_per_block=(1, 2, 10),
            projection_class_embeddings_input_dim=2816,
            cross_attention_dim=2048,
            norm_num_groups=32,
        ),
        "vae": dict(
            block_out_channels=(128, 256, 512, 512),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=2,
            sample_size=1024,
            norm_num_groups=32,
            scaling_factor=0.13025,
            force_upcast=True,
        ),
        "text_encoder": dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            projection_dim=768,
            hidden_act="quick_gelu",
        ),
        "text_encoder_2": dict(
            hidden_size=1280,
            intermediate_size=5120,
            num_hidden_layers=32,
            num_attention_heads=20,
            projection_dim=1280,
            hidden_act="gelu",
        ),
        "adapter": dict(
            in_channels=3,
            channels=(320, 640, 1280, 1280),
            num_res_blocks=2,
            downscale_factor=16,
            adapter_type="full_adapter_xl",
        ),
        "controlnet": dict(conditioning_embedding_out_channels=(16, 32, 96, 256)),
    },
}


def _text_encoder(cfg: dict, with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=EOS_ID,
        layer_norm_eps=1e-5,
        **cfg,
    )
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


# ``conditioning`` names -> component keys: the openpose adapter and ControlNet, and the ControlNets
# of the head-mesh modes (PNCC renders, depth maps of the procedural scene).
CONDITIONING_KEYS = {
    "adapter": "adapter",
    "controlnet": "controlnet",
    "pncc": "controlnet_pncc",
    "depth": "controlnet_depth",
}


def _liven(controlnet, std: float) -> None:
    """Small random weights in a ControlNet's zero convolutions: a freshly initialised ControlNet adds
    exactly zero to the UNet, so with random weights its condition would never reach the pixels."""
    import torch

    for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
        torch.nn.init.normal_(block.weight, 0.0, std)
        torch.nn.init.zeros_(block.bias)


def build_components(
    arch: str,
    seed: int = 0,
    conditioning: tuple[str, ...] = ("adapter",),
    device: str | None = None,
    live_controlnets: float | None = None,
) -> dict:
    """Random-weight SDXL components of architecture ``arch`` ("tiny" or "full").

    Returns the keyword arguments of ``StableDiffusionXLPipeline`` (unet, vae, text encoders,
    tokenizers, scheduler) plus, as listed in ``conditioning``: ``adapter`` (the openpose
    ``T2IAdapter``), ``controlnet`` (openpose), ``controlnet_pncc`` and ``controlnet_depth``
    (``ControlNetModel`` s of the head-mesh modes; same architecture, their own random condition
    embedding). Same seed, same weights. ``device``: where the weights are initialised (a GPU does
    it in a moment; "meta" allocates nothing). ``live_controlnets``: the standard deviation of
    random weights put in the ControlNets' zero convolutions (None: zeros, as a real ControlNet
    starts its training).
    """
    import contextlib

    from ..offline import configure

    configure()
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, T2IAdapter, UNet2DConditionModel

    from .clip_tokenizer import sdxl_tokenizers

    if arch not in ARCHS:
        raise KeyError(f"unknown SDXL architecture '{arch}' (known: {', '.join(ARCHS)})")
    unknown = [c for c in conditioning if c not in CONDITIONING_KEYS]
    if unknown:
        raise KeyError(f"unknown conditioning {unknown} (known: {', '.join(CONDITIONING_KEYS)})")
    cfg = ARCHS[arch]
    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = sdxl_tokenizers()
    components = {
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": EulerDiscreteScheduler(**SCHEDULER_CONFIG),
    }
    with torch.device(device) if device else contextlib.nullcontext():
        unet = UNet2DConditionModel(**cfg["unet"])
        components.update(
            unet=unet,
            vae=AutoencoderKL(**cfg["vae"]),
            text_encoder=_text_encoder(cfg["text_encoder"], with_projection=False),
            text_encoder_2=_text_encoder(cfg["text_encoder_2"], with_projection=True),
        )
        if "adapter" in conditioning:
            components["adapter"] = T2IAdapter(**cfg["adapter"])
        for name in ("controlnet", "pncc", "depth"):  # this order: the same seed gives the same openpose ControlNet
            if name in conditioning:
                net = ControlNetModel.from_unet(unet, **cfg["controlnet"])
                if live_controlnets:
                    _liven(net, live_controlnets)
                components[CONDITIONING_KEYS[name]] = net
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    return components


def count_parameters(components: dict) -> dict[str, int]:
    import torch

    return {
        name: sum(p.numel() for p in m.parameters()) for name, m in components.items() if isinstance(m, torch.nn.Module)
    }
