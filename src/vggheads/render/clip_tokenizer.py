"""CLIP's BPE tokenizer built offline from the vocabulary the ``open_clip_torch`` wheel ships.

SDXL's two tokenizers are CLIP's (OpenAI ViT-L/14 and OpenCLIP ViT-bigG/14 share one BPE
vocabulary). The tiny random-weight SDXL needs them without a download; ``open_clip`` packs the
merges as ``open_clip/bpe_simple_vocab_16e6.txt.gz``. The vocabulary is rebuilt the way CLIP's
``SimpleTokenizer`` does it, so ids match CLIP's own (``"a photo of a cat"`` ->
``[49406, 320, 1125, 539, 320, 2368, 49407]``):

1. the 256 byte symbols (GPT-2's byte-to-unicode table), then the same 256 with ``</w>``;
2. the first 48,894 merges (``49152 - 256 - 2``), each joined into one token;
3. ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407): 49,408 tokens.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources
from pathlib import Path

VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77  # CLIP's context length; SDXL truncates prompts to it


def bpe_vocab_path() -> Path:
    """The gzipped merges file inside the installed ``open_clip`` package."""
    from ..errors import MissingWeightsError

    try:
        path = Path(str(resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"))
    except ModuleNotFoundError:
        path = Path("open_clip/bpe_simple_vocab_16e6.txt.gz")
    if not path.exists():
        raise MissingWeightsError(
            "CLIP BPE vocabulary", path, "Install the open_clip_torch wheel pinned in pyproject.toml (`make env`)."
        )
    return path


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's token -> id table (49,408 entries) and its merges, in rank order."""
    lines = gzip.open(bpe_vocab_path()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]  # line 0 is a version header
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"CLIP vocabulary from {bpe_vocab_path()} has {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return vocab, merges


def clip_tokenizer(pad_token: str = EOS):
    """A ``transformers.CLIPTokenizer`` with CLIP's vocabulary.

    ``pad_token``: SDXL's first tokenizer pads with ``<|endoftext|>``, its second (OpenCLIP bigG)
    with ``"!"`` (id 0); :func:`sdxl_tokenizers` sets both as the real checkpoints do.
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=MAX_LENGTH)


def sdxl_tokenizers():
    """The pair (tokenizer, tokenizer_2) as in the SDXL checkpoints."""
    return clip_tokenizer(pad_token=EOS), clip_tokenizer(pad_token="!")
