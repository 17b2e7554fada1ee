"""What a metric returns when it does not apply: a reason, never a made-up number."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# peak below this (about -80 dBFS) counts as silence
SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class NotScored:
    """A metric that was not computed for a clip, and why ("shorter than ViSQOL's minimum")."""

    reason: str

    def __str__(self) -> str:
        return f"not scored: {self.reason}"


def is_silent(x: torch.Tensor) -> bool:
    """True when `x` has no sample above `SILENCE_PEAK` (or no finite sample)."""
    x = x[torch.isfinite(x)]
    return x.numel() == 0 or float(x.abs().max()) < SILENCE_PEAK
