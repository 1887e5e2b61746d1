"""BLIP-2 captions of the downloaded photos (paper section 1.1: ``Salesforce/blip2-opt-2.7b``, 50 new tokens).

The model is read from a local directory or from the Hugging Face cache (``local_files_only``), never
downloaded. ``build_tiny`` writes a random-weight BLIP-2 of the same classes (ViT + Q-Former + OPT,
``Blip2ForConditionalGeneration``) and a processor with a small word-level vocabulary of caption
words, so the same loading and generation code runs offline in seconds; its captions are random
strings of those words.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

from ..errors import MissingWeightsError

PAPER_MODEL = "Salesforce/blip2-opt-2.7b"
# The tiny model's vocabulary: words of people captions, so its random captions pass the people check.
TINY_WORDS = (
    "a an the two three four man men woman women person people boy boys girl girls child children couple family "
    "friends group crowd player players student students bride groom dancer singer worker workers smiling "
    "standing sitting walking posing talking holding wearing laughing in on at with of and near street park "
    "beach room office stage field city garden kitchen photo portrait red blue white black hat shirt dress"
).split()
TINY_SPECIALS = ("<pad>", "<unk>", "</s>", "<image>")
TINY_QUERY_TOKENS = 4
# BLIP-2's image normalisation (the CLIP statistics its processor uses).
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def build_tiny(out: Path, seed: int = 0) -> dict:
    """Write a tiny random-weight BLIP-2 (model + processor + generation config) to ``out`` atomically."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        PreTrainedTokenizerFast,
    )

    from ..io import atomic_dir

    vocab = {tok: i for i, tok in enumerate(TINY_SPECIALS)}
    for word in TINY_WORDS:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="</s>", bos_token="</s>"
    )
    config = Blip2Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        qformer_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            encoder_hidden_size=32,
            vocab_size=len(vocab),
        ),
        text_config=dict(
            model_type="opt",
            hidden_size=32,
            ffn_dim=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=len(vocab),
            max_position_embeddings=128,
            word_embed_proj_dim=32,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=2,
        ),
        num_query_tokens=TINY_QUERY_TOKENS,
        image_token_index=vocab["<image>"],
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    # Random weights end a caption at once; a real checkpoint's own generation config carries its
    # defaults the same way. max_new_tokens stays a pipeline setting (captions.blip2.max_new_tokens).
    model.generation_config.min_new_tokens = 8
    model.generation_config.no_repeat_ngram_size = 1
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}, image_mean=CLIP_MEAN, image_std=CLIP_STD),
        tokenizer=tokenizer,
        num_query_tokens=TINY_QUERY_TOKENS,
    )
    with atomic_dir(Path(out)) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab": len(vocab), "out": str(out)}


def resolve(model: str) -> Path:
    """A local directory, or the snapshot of a Hugging Face id already in the local cache."""
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingWeightsError("BLIP-2 model directory (captions.blip2.model)", path / "config.json", _HOW)
        return path
    if path.is_absolute() or model.startswith(".") or model.count("/") != 1:
        raise MissingWeightsError("BLIP-2 model directory (captions.blip2.model)", path, _HOW)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:
        raise MissingWeightsError(
            f"BLIP-2 model '{model}' in the Hugging Face cache (captions.blip2.model)", model, _HOW
        ) from None


_HOW = (
    f"On a machine with internet: `hf download {PAPER_MODEL}` (the paper's model, ~15 GB; MIT licence) and "
    "copy ~/.cache/huggingface/hub here (or point HF_HOME at it), or `hf download ... --local-dir DIR` and set "
    "captions.blip2.model to DIR. `captions.blip2.model: tiny` uses the tiny random-weight model the "
    "pipeline builds itself. Nothing is downloaded at run time."
)


class Captioner:
    """Batched BLIP-2 captioning: fp16 on a GPU, fp32 on a CPU (``dtype: auto``)."""

    def __init__(
        self, model: str, device: str = "auto", dtype: str = "auto", max_new_tokens: int = 50, prompt: str | None = None
    ):
        import torch
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        path = resolve(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        self.device, self.dtype = device, getattr(torch, dtype)
        self.processor = Blip2Processor.from_pretrained(path, local_files_only=True)
        self.model = (
            Blip2ForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype=self.dtype)
            .to(device)
            .eval()
        )
        self.max_new_tokens = max_new_tokens
        self.generation = copy.deepcopy(self.model.generation_config)
        self.generation.max_new_tokens = max_new_tokens
        self.prompt = prompt

    def __call__(self, images: Sequence) -> list[str]:
        """Captions of PIL images (RGB), in order."""
        import torch

        kwargs = {"images": list(images), "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = [self.prompt] * len(images)
        inputs = self.processor(**kwargs).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            # The checkpoint's own generation config (BLIP-2 hands generation to its language model,
            # which would otherwise use its defaults); max_new_tokens is the pipeline's.
            out = self.model.generate(**inputs, generation_config=self.generation)
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        if self.prompt:  # decoder-only models return the prompt first
            texts = [t[len(self.prompt) :] if t.startswith(self.prompt) else t for t in texts]
        return [" ".join(t.split()) for t in texts]
