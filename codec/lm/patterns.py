"""MusicGen's delay pattern over RVQ codes: codebook k is shifted right by k frames.

With n_q codebooks and T frames, the delayed sequence has S = T + n_q - 1 steps. At step s the
model predicts every codebook at once: codebook k of frame s - k. So the coarse code of a frame
is predicted first and its finer codes come one step later each, conditioned on the coarser
ones of the same frame (Copet et al. 2023, "Simple and Controllable Music Generation").

    frame:       0   1   2   3                step:  0   1   2   3   4   5
    codebook 0: a0  a1  a2  a3      delay ->         a0  a1  a2  a3  _   _
    codebook 1: b0  b1  b2  b3                       _   b0  b1  b2  b3  _
    codebook 2: c0  c1  c2  c3                       _   _   c0  c1  c2  c3

`_` is the special id (`pad_id`, one past the codebook: K), which also serves as the
beginning-of-sequence input and as padding after a clip's end; it is never a prediction target.
"""

from __future__ import annotations

import torch


def num_steps(num_frames: int, n_q: int) -> int:
    """Steps S of the delayed sequence of `num_frames` frames: T + n_q - 1."""
    return num_frames + n_q - 1


def delay(codes: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Shift codebook k right by k frames.

    Args:
        codes: `[..., n_q, T]` integer codes.
        pad_id: the special id written where a codebook has not started or has ended.

    Returns:
        `[..., n_q, T + n_q - 1]` with `out[..., k, t + k] = codes[..., k, t]`.
    """
    if codes.dim() < 2:
        raise ValueError(f"codes must be [..., n_q, T], got shape {tuple(codes.shape)}")
    n_q, t = codes.shape[-2], codes.shape[-1]
    out = codes.new_full((*codes.shape[:-1], num_steps(t, n_q)), pad_id)
    for k in range(n_q):
        out[..., k, k : k + t] = codes[..., k, :]
    return out


def undelay(delayed: torch.Tensor, time_dim: int = -1) -> torch.Tensor:
    """Invert `delay`: frame t of codebook k is step t + k.

    Works for codes `[..., n_q, S]` (time last, the default) and for per-step values such as
    logits `[B, n_q, S, V]` (`time_dim=2`): the codebook axis is the one before `time_dim`.

    Returns:
        the same layout with S - n_q + 1 frames on `time_dim`.
    """
    time_dim = time_dim % delayed.dim()
    if time_dim < 1:
        raise ValueError("undelay needs a codebook axis before the time axis")
    n_q, s = delayed.shape[time_dim - 1], delayed.shape[time_dim]
    frames = s - n_q + 1
    if frames < 1:
        raise ValueError(f"{s} steps hold no whole frame of {n_q} delayed codebooks")
    parts = [delayed.select(time_dim - 1, k).narrow(time_dim - 1, k, frames) for k in range(n_q)]
    return torch.stack(parts, dim=time_dim - 1)
