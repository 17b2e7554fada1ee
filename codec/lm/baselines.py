"""Count-based references for the LM's bits, fitted on the training split, one per codebook.

- `UnigramBaseline`: add-one smoothed code frequencies, no context: what an entropy coder
  with a fixed table per codebook would spend.
- `RepeatLastBaseline`: "the code stays": P(same code as the previous frame) = r (the training
  repeat rate, add-one smoothed), the other codes share 1 - r in proportion to the unigram.
- `BigramBaseline`: the previous code of the same codebook as context, Witten-Bell interpolated
  with the unigram (a small n-gram with backoff); unseen histories back off to the unigram.

Each gives `bits(codes [n_q, T]) -> [n_q, T]`, the bits of every code; a clip's first frame
has no previous code and gets the unigram's bits in all three.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def _as_array(codes: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = codes.numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be [n_q, T], got shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


class UnigramBaseline:
    """Per-codebook code frequencies with add-one smoothing.

    Args:
        n_q, codebook_size: the tokens' shape.
    """

    name = "unigram (add-one)"

    def __init__(self, n_q: int, codebook_size: int) -> None:
        self.n_q, self.k = n_q, codebook_size
        self.counts = np.zeros((n_q, codebook_size), dtype=np.int64)

    def fit(self, clips: Iterable[torch.Tensor | np.ndarray]) -> UnigramBaseline:
        """Count the codes of every training clip `[n_q, T]`."""
        clips = list(clips)
        for c in clips:
            arr = _as_array(c)
            if arr.shape[0] != self.n_q or (arr.size and not 0 <= arr.min() <= arr.max() < self.k):
                raise ValueError(f"codes must be [{self.n_q}, T] in [0, {self.k})")
            for q in range(self.n_q):
                self.counts[q] += np.bincount(arr[q], minlength=self.k)
        self._observe(clips)
        return self

    def _observe(self, clips: Iterable[torch.Tensor | np.ndarray]) -> None:
        """Subclasses count more in the same pass (the clips may be a list only)."""

    def probs(self) -> np.ndarray:
        """`[n_q, K]` smoothed probabilities."""
        return (self.counts + 1) / (self.counts.sum(axis=1, keepdims=True) + self.k)

    def bits(self, codes: torch.Tensor | np.ndarray) -> np.ndarray:
        """Bits of every code `[n_q, T]` (float64)."""
        arr = _as_array(codes)
        p = self.probs()
        return -np.log2(np.take_along_axis(p, arr, axis=1))


class RepeatLastBaseline(UnigramBaseline):
    """Repeat the previous frame's code with the training repeat rate, else the unigram."""

    name = "repeat-last"

    def __init__(self, n_q: int, codebook_size: int) -> None:
        super().__init__(n_q, codebook_size)
        self.repeats = np.zeros(n_q, dtype=np.int64)
        self.transitions = np.zeros(n_q, dtype=np.int64)

    def _observe(self, clips: Iterable[torch.Tensor | np.ndarray]) -> None:
        for c in clips:
            arr = _as_array(c)
            self.repeats += (arr[:, 1:] == arr[:, :-1]).sum(axis=1)
            self.transitions += arr.shape[1] - 1 if arr.shape[1] > 1 else 0

    def repeat_rate(self) -> np.ndarray:
        """`[n_q]` P(code == previous code), add-one smoothed."""
        return (self.repeats + 1) / (self.transitions + 2)

    def bits(self, codes: torch.Tensor | np.ndarray) -> np.ndarray:
        arr = _as_array(codes)
        p, r = self.probs(), self.repeat_rate()[:, None]
        out = super().bits(arr)
        if arr.shape[1] > 1:
            prev, cur = arr[:, :-1], arr[:, 1:]
            p_cur = np.take_along_axis(p, cur, axis=1)
            p_prev = np.take_along_axis(p, prev, axis=1)
            prob = np.where(cur == prev, r, (1 - r) * p_cur / (1 - p_prev))
            out[:, 1:] = -np.log2(prob)
        return out


class BigramBaseline(UnigramBaseline):
    """Previous code -> code, per codebook, Witten-Bell interpolated with the unigram:
    P(w | h) = (c(h, w) + N(h) u(w)) / (c(h) + N(h)), N(h) the distinct codes seen after h."""

    name = "bigram (Witten-Bell)"

    def __init__(self, n_q: int, codebook_size: int) -> None:
        super().__init__(n_q, codebook_size)
        self.pairs: list[np.ndarray] = []  # per codebook: sorted pair ids h * K + w
        self.pair_counts: list[np.ndarray] = []
        self.history = np.zeros((n_q, codebook_size), dtype=np.int64)  # c(h)
        self.types = np.zeros((n_q, codebook_size), dtype=np.int64)  # N(h)

    def _observe(self, clips: Iterable[torch.Tensor | np.ndarray]) -> None:
        ids: list[list[np.ndarray]] = [[] for _ in range(self.n_q)]
        for c in clips:
            arr = _as_array(c)
            for q in range(self.n_q):
                ids[q].append(arr[q, :-1] * self.k + arr[q, 1:])
        for q in range(self.n_q):
            flat = np.concatenate(ids[q]) if ids[q] else np.zeros(0, dtype=np.int64)
            uniq, cnt = np.unique(flat, return_counts=True)
            self.pairs.append(uniq)
            self.pair_counts.append(cnt)
            self.history[q] = np.bincount(uniq // self.k, weights=cnt, minlength=self.k)
            self.types[q] = np.bincount(uniq // self.k, minlength=self.k)

    def bits(self, codes: torch.Tensor | np.ndarray) -> np.ndarray:
        arr = _as_array(codes)
        p = self.probs()
        out = super().bits(arr)
        for q in range(self.n_q if arr.shape[1] > 1 else 0):
            h, w = arr[q, :-1], arr[q, 1:]
            ids, uniq = h * self.k + w, self.pairs[q]
            idx = np.clip(np.searchsorted(uniq, ids), 0, max(len(uniq) - 1, 0))
            found = uniq[idx] == ids if len(uniq) else np.zeros(len(ids), dtype=bool)
            c_hw = np.where(found, self.pair_counts[q][idx] if len(uniq) else 0, 0)
            c_h, n_h = self.history[q][h], self.types[q][h]
            uni = p[q][w]
            seen = c_h > 0
            prob = np.where(seen, (c_hw + n_h * uni) / np.maximum(c_h + n_h, 1), uni)
            out[q, 1:] = -np.log2(prob)
        return out


BASELINES = (UnigramBaseline, RepeatLastBaseline, BigramBaseline)
