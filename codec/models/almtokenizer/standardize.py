"""Per-channel standardisation of the patch frames, with statistics of the training data.

The autoencoder's latents have per-channel offsets of several units and standard deviations of
4-6 (the bundled encodec_demo; other autoencoders differ), so the transformers see
`z = (e - mean) / std` and their output is mapped back by `e = z * std + mean` before unpatchify.
The statistics are buffers (saved in every checkpoint), set once from training frames by
`set_stats` before stage 2 starts (from the latent cache), never learnt.
"""

from __future__ import annotations

import torch
from torch import nn


class FrameStandardizer(nn.Module):
    """`[B, d, T]` frames <-> standardised frames, per channel.

    Args:
        channels: d.
        enabled: False makes both directions the identity (statistics still stored).

    Buffers: `mean` `[d]`, `std` `[d]`, `ready` (1 once statistics are set).
    """

    def __init__(self, channels: int, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.register_buffer("ready", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor, min_ratio: float = 0.05) -> None:
        """Store per-channel `mean`, `std` `[d]`. A std below `min_ratio` x the median std is
        raised to that floor, so a near-constant channel cannot blow up to huge values."""
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(
                f"frame statistics must be [{self.mean.numel()}], got {tuple(mean.shape)} and "
                f"{tuple(std.shape)}"
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("frame statistics must be finite")
        floor = float(std.median()) * min_ratio
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(max(floor, 1e-8)))
        self.ready.fill_(1)

    @torch.no_grad()
    def fit(self, frames: torch.Tensor) -> None:
        """Statistics of `frames` `[B, d, T]` (or `[d, N]`) over every axis but the channel."""
        x = frames.detach().float()
        x = x.transpose(0, 1).reshape(x.shape[1], -1) if x.ndim == 3 else x
        self.set_stats(x.mean(1), x.std(1))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Raw frames `[B, d, T]` -> standardised `[B, d, T]`."""
        if not self.enabled:
            return e
        return (e - self.mean[:, None]) / self.std[:, None]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised frames `[B, d, T]` -> raw frames `[B, d, T]`."""
        if not self.enabled:
            return z
        return z * self.std[:, None] + self.mean[:, None]
