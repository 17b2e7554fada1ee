"""Position-wise linear paths across a window's group (`base_args.group_linear`).

The query encoder and the mask-token decoder reach a group's frames only through attention,
which a short CPU training run leaves far from even a linear code: on the corpus val clips the
first 64 principal components of a group's w = 3 frames keep all but 29 % of their energy, the
trained query tokens (before quantization) all but 60 % (bench/results/). These paths give both
sides the linear code from the first step:

    query_g  += sum_j A_j x_{g, j}        (encoder: frame j of group g, after frame_proj)
    mask_g,j += B_j token_g                (decoder: mask vector j of group g)

with one `[D, D]` matrix per position j < window_max. Both start at zero, so a checkpoint
trained without them loads and starts out unchanged; the bottleneck is unchanged (the decoder
still sees only the tokens).
"""

from __future__ import annotations

import torch
from torch import nn

from codec.models.almtokenizer.interleave import group_frames


class GroupLinear(nn.Module):
    """`window_max` matrices `[dim, dim]`, zero-initialised."""

    def __init__(self, dim: int, window_max: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(window_max, dim, dim))

    def _check(self, window: int, dim: int) -> None:
        if window > self.weight.shape[0]:
            raise ValueError(f"window {window} > window_max {self.weight.shape[0]}")
        if dim != self.weight.shape[-1]:
            raise ValueError(f"expected dim {self.weight.shape[-1]}, got {dim}")

    def summarize(self, frames: torch.Tensor, window: int) -> torch.Tensor:
        """Frames `[B, T, D]` (zero-padded to whole groups) -> one vector per group
        `[B, ceil(T / w), D]`: sum over positions j of A_j x_{g, j}."""
        self._check(window, frames.shape[-1])
        groups = group_frames(frames, window)
        return torch.einsum("bnjd,jed->bne", groups, self.weight[:window].to(frames.dtype))

    def expand(self, tokens: torch.Tensor, window: int) -> torch.Tensor:
        """Tokens `[B, n, D]` -> one vector per position of each group `[B, n, w, D]`:
        B_j token_g."""
        self._check(window, tokens.shape[-1])
        return torch.einsum("bnd,jed->bnje", tokens, self.weight[:window].to(tokens.dtype))
