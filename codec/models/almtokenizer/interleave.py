"""Query-token interleaving (encoder side) and mask-token interleaving (decoder side).

Both sides use the same layout of `n = T / w` groups of `w + 1` positions:

    encoder:  e_0 ... e_{w-1} [Q] | e_w ... e_{2w-1} [Q] | ...
    decoder:  [M] ... [M]     h_0 | [M] ... [M]      h_1 | ...

so the query / token of group g sits at position g * (w + 1) + w and the frames (encoder) or
mask vectors (decoder) of group g at g * (w + 1) + j, j < w. The helpers below work by reshaping
`[B, n, w + 1, D]`, never by recomputing indices from a sequence length, so encode and decode
cannot disagree (the reference reproduction's `decode()` derived the query count from the token
tensor as `n // (w + 1)` and so removed the wrong positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def num_groups(num_frames: int, window: int) -> int:
    """Number of query tokens for `num_frames` frames: ceil(T / w)."""
    _check_window(window)
    return -(-num_frames // window)


def query_positions(
    num_tokens: int, window: int, device: torch.device | None = None
) -> torch.Tensor:
    """Indices of the query tokens in the interleaved sequence: `g * (w + 1) + w`, `[n]`."""
    _check_window(window)
    return torch.arange(num_tokens, device=device) * (window + 1) + window


def frame_positions(
    num_tokens: int, window: int, device: torch.device | None = None
) -> torch.Tensor:
    """Indices of the frames (encoder) / mask vectors (decoder), in order: `[n * w]`."""
    _check_window(window)
    g = torch.arange(num_tokens, device=device)[:, None] * (window + 1)
    return (g + torch.arange(window, device=device)[None, :]).reshape(-1)


@dataclass
class Interleaved:
    """An interleaved encoder sequence.

    Attributes:
        seq: `[B, T_pad + n, D]` frames with a query vector after every `window` frames.
        window: w.
        num_tokens: n = T_pad / w = ceil(T / w).
        num_frames: T, the frame count before padding.
    """

    seq: torch.Tensor
    window: int
    num_tokens: int
    num_frames: int


def group_frames(frames: torch.Tensor, window: int) -> torch.Tensor:
    """`[B, T, D]` zero-padded to whole groups and split into them: `[B, ceil(T / w), w, D]`."""
    B, T, D = frames.shape
    n = num_groups(T, window)
    return F.pad(frames, (0, 0, 0, n * window - T)).reshape(B, n, window, D)


def group_means(frames: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of each group of `window` frames of `[B, T, D]` (zero-padded to whole groups):
    `[B, ceil(T / w), D]`."""
    return group_frames(frames, window).mean(2)


def interleave_queries(frames: torch.Tensor, query: torch.Tensor, window: int) -> Interleaved:
    """Insert a query after every `window` frames of `frames` `[B, T, D]`: the same vector
    `query` `[D]` everywhere, or one per group `[B, n, D]`.

    T is zero-padded up to a multiple of w first, so the result has T_pad + T_pad / w positions.
    """
    B, T, D = frames.shape
    groups = group_frames(frames, window)
    n = groups.shape[1]
    if query.ndim == 3:
        if query.shape != (B, n, D):
            raise ValueError(f"query must be [{D}] or [{B}, {n}, {D}], got {tuple(query.shape)}")
        q = query[:, :, None].to(frames.dtype)
    else:
        q = query.reshape(1, 1, 1, D).expand(B, n, 1, D).to(frames.dtype)
    seq = torch.cat([groups, q], dim=2).reshape(B, n * (window + 1), D)
    return Interleaved(seq=seq, window=window, num_tokens=n, num_frames=T)


def retrieve_queries(seq: torch.Tensor, window: int) -> torch.Tensor:
    """The outputs at query positions of an interleaved `[B, n * (w + 1), D]`: `[B, n, D]`."""
    return _groups(seq, window)[:, :, window]


def retrieve_frames(seq: torch.Tensor, window: int) -> torch.Tensor:
    """The outputs at frame / mask positions of `[B, n * (w + 1), D]`: `[B, n * w, D]`."""
    g = _groups(seq, window)
    B, n, _, D = g.shape
    return g[:, :, :window].reshape(B, n * window, D)


def interleave_masks(tokens: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
    """Decoder input: for each token of `tokens` `[B, n, D]`, `window` mask vectors followed by
    the token: `[B, n * (w + 1), D]`. `mask` is one vector `[D]` (repeated w times), one per
    position in the window `[w, D]`, or one per position of every group `[B, n, w, D]`."""
    _check_window(window)
    B, n, D = tokens.shape
    if mask.ndim == 4:
        if mask.shape != (B, n, window, D):
            raise ValueError(f"mask must be [{B}, {n}, {window}, {D}], got {tuple(mask.shape)}")
        m = mask.to(tokens.dtype)
        return torch.cat([m, tokens[:, :, None]], dim=2).reshape(B, n * (window + 1), D)
    if mask.ndim == 1:
        mask = mask.reshape(1, D).expand(window, D)
    if mask.shape != (window, D):
        raise ValueError(f"mask must be [{D}] or [{window}, {D}], got {tuple(mask.shape)}")
    m = mask.reshape(1, 1, window, D).expand(B, n, window, D).to(tokens.dtype)
    return torch.cat([m, tokens[:, :, None]], dim=2).reshape(B, n * (window + 1), D)


def _groups(seq: torch.Tensor, window: int) -> torch.Tensor:
    _check_window(window)
    B, L, D = seq.shape
    if L % (window + 1):
        raise ValueError(f"sequence length {L} is not a multiple of window + 1 = {window + 1}")
    return seq.reshape(B, L // (window + 1), window + 1, D)


def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
