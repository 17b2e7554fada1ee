"""The token language model: a decoder-only transformer over a codec's code frames.

    python -m codec.lm --config configs/lm_alm_w3.yaml [--resume] [key=value ...]   (train)
    python -m codec.lm.evaluate --checkpoint work_dirs/lm/alm_w3/best               (score)

Codec-agnostic: it reads the code shards of `python -m codec.tokenizer` and their manifest, never
a codec's internals. Modules: `patterns` (MusicGen's delay pattern), `transformer` (causal
blocks, RoPE, KV cache), `model` (the interface and the delay scheme), `depth` (temporal + depth
scheme), `loaders` (build, save, load; the one place models are assembled), `record` (which
tokenizer made the codes), `data` (shards -> crops, the held-out split), `baselines` and
`scoring` (bits per token / per second), `generate` (continuations), `config`, `loop`, `cli`,
`evaluate`. docs/lm.md explains the commands.
"""

from codec.lm.generate import generate
from codec.lm.loaders import build_lm, load_lm, save_lm
from codec.lm.model import LMModelConfig, TokenLM, TokenShape
from codec.lm.record import TokenizerMismatchError, TokenizerRecord

__all__ = [
    "LMModelConfig", "TokenLM", "TokenShape", "TokenizerMismatchError", "TokenizerRecord",
    "build_lm", "generate", "load_lm", "save_lm",
]  # fmt: skip
