"""Codebook usage of RVQ codes: per-layer utilisation, perplexity and most frequent codes.

Used by `python -m codec.tokenizer stats` over a whole shard folder and by the app for the
current clip. No plotting here: `token_timeline` returns arrays for the caller to draw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

CodesLike = torch.Tensor | np.ndarray


@dataclass
class LayerStats:
    """Usage of one RVQ layer.

    Attributes:
        layer: RVQ layer index (0 = coarsest).
        used: distinct codes that occur.
        utilisation: used / codebook_size.
        entropy_bits: entropy of the empirical code distribution (bits).
        perplexity: 2 ** entropy_bits (the effective number of equally used codes).
        top: up to 10 (code, count) pairs, most frequent first (ties: lower code first).
    """

    layer: int
    used: int
    utilisation: float
    entropy_bits: float
    perplexity: float
    top: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class CodebookStats:
    """Usage of every RVQ layer over `num_tokens` time steps."""

    codebook_size: int
    num_tokens: int
    layers: list[LayerStats]

    def to_dict(self) -> dict:
        return {
            "codebook_size": self.codebook_size,
            "num_tokens": self.num_tokens,
            "layers": [{**vars(lay), "top": [list(t) for t in lay.top]} for lay in self.layers],
        }


@dataclass
class TokenTimeline:
    """Codes per layer over time.

    Attributes:
        times: start time of each token in seconds, `[T]`.
        codes: `[n_q, T]` int64.
        frame_rate: tokens per second.
    """

    times: np.ndarray
    codes: np.ndarray
    frame_rate: float


def _as_layers_by_time(codes: CodesLike) -> np.ndarray:
    """`[n_q, T]` or `[1, n_q, T]` (tensor or array) -> int64 array `[n_q, T]`."""
    arr = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"codes must be [n_q, T] (or [1, n_q, T]), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"codes must be integers, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class CodebookCounter:
    """Streaming per-layer code counts (so a whole dataset never sits in memory)."""

    def __init__(self, codebook_size: int) -> None:
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        self.codebook_size = codebook_size
        self.counts: np.ndarray | None = None  # [n_q, K] int64
        self.num_tokens = 0

    def update(self, codes: CodesLike) -> None:
        """Add one clip's codes `[n_q, T]`."""
        arr = _as_layers_by_time(codes)
        if arr.size and (arr.min() < 0 or arr.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        if self.counts is None:
            self.counts = np.zeros((arr.shape[0], self.codebook_size), dtype=np.int64)
        elif arr.shape[0] != self.counts.shape[0]:
            raise ValueError(
                f"all codes need the same number of layers: {arr.shape[0]} vs "
                f"{self.counts.shape[0]}"
            )
        for q in range(arr.shape[0]):
            self.counts[q] += np.bincount(arr[q], minlength=self.codebook_size)
        self.num_tokens += arr.shape[1]

    def stats(self, top_k: int = 10) -> CodebookStats:
        if self.counts is None:
            return CodebookStats(self.codebook_size, 0, [])
        return CodebookStats(
            self.codebook_size,
            self.num_tokens,
            [_layer_stats(q, c, self.codebook_size, top_k) for q, c in enumerate(self.counts)],
        )


def _layer_stats(layer: int, counts: np.ndarray, size: int, top_k: int) -> LayerStats:
    total = int(counts.sum())
    used = int((counts > 0).sum())
    if total == 0:
        return LayerStats(layer, 0, 0.0, 0.0, 0.0, [])
    p = counts[counts > 0] / total
    entropy = max(0.0, float(-(p * np.log2(p)).sum()))
    order = np.lexsort((np.arange(size), -counts))[: min(top_k, used)]
    top = [(int(i), int(counts[i])) for i in order]
    return LayerStats(layer, used, used / size, entropy, float(2.0**entropy), top)


def codebook_stats(
    codes: CodesLike | Sequence[CodesLike] | Iterable[CodesLike],
    codebook_size: int,
    top_k: int = 10,
) -> CodebookStats:
    """Per-layer usage of `codes` `[n_q, T]`, or of a list of such clips taken together.

    Utilisation is the share of the K entries that occur; perplexity is 2 ** entropy (bits)
    of the empirical distribution, so K for perfectly uniform use and 1 for a single code.
    """
    counter = CodebookCounter(codebook_size)
    if isinstance(codes, torch.Tensor | np.ndarray):
        counter.update(codes)
    else:
        for clip in codes:
            counter.update(clip)
    return counter.stats(top_k)


def token_timeline(codes: CodesLike, frame_rate: float, start: float = 0.0) -> TokenTimeline:
    """Codes per layer over time: `codes` `[n_q, T]` -> times `[T]` (s) and codes `[n_q, T]`."""
    if not frame_rate > 0 or math.isinf(frame_rate):
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    arr = _as_layers_by_time(codes)
    times = start + np.arange(arr.shape[1], dtype=np.float64) / frame_rate
    return TokenTimeline(times=times, codes=arr.copy(), frame_rate=float(frame_rate))


def format_stats(stats: CodebookStats) -> str:
    """A plain-text table: one row per layer."""
    lines = [
        f"{stats.num_tokens} tokens per layer, codebook size {stats.codebook_size}",
        f"{'layer':>5} {'used':>6} {'util %':>7} {'perplexity':>10} {'entropy':>8}  top-10 codes",
    ]
    for lay in stats.layers:
        top = " ".join(f"{c}:{n}" for c, n in lay.top)
        lines.append(
            f"{lay.layer:>5} {lay.used:>6} {100 * lay.utilisation:>7.2f} "
            f"{lay.perplexity:>10.1f} {lay.entropy_bits:>8.3f}  {top}"
        )
    return "\n".join(lines)
