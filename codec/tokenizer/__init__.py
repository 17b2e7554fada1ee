"""Dataset tokenization: code shards on disk, their index, and codebook-usage statistics.

`python -m codec.tokenizer` is the command line; these modules are its library:
`inputs` (clip lists, length-bucketed batches), `shards` (atomic, resumable shard files and the
index), `runner` (batched / distributed encode, exact decode) and `stats` (codebook usage).
"""

from codec.tokenizer.runner import (
    DecodeSummary,
    EncodeSummary,
    decode_shards,
    encode_dataset,
    iter_decoded,
)
from codec.tokenizer.shards import ShardError, iter_codes, read_index, read_manifest
from codec.tokenizer.stats import (
    CodebookCounter,
    CodebookStats,
    LayerStats,
    TokenTimeline,
    codebook_stats,
    format_stats,
    token_timeline,
)

__all__ = [
    "CodebookCounter", "CodebookStats", "DecodeSummary", "EncodeSummary", "LayerStats",
    "ShardError", "TokenTimeline", "codebook_stats", "decode_shards", "encode_dataset",
    "format_stats", "iter_codes", "iter_decoded", "read_index", "read_manifest", "token_timeline",
]  # fmt: skip
