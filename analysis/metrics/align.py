"""Delay alignment of a decoded clip to its reference.

Before any metric the estimate is aligned to the reference by the lag (within +-50 ms) that
maximises their cross-correlation, so a codec's constant delay is not scored as distortion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from codec.models.base import SAMPLE_RATE


@dataclass
class Alignment:
    """Delay alignment result.

    Attributes:
        lag: samples by which the estimate lags the reference (positive: estimate is late).
        estimate, reference: the overlapping parts after the shift, both `[M]`.
    """

    lag: int
    estimate: torch.Tensor
    reference: torch.Tensor


def as_mono(x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).detach().float().cpu().reshape(-1)


def align_delay(
    estimate: torch.Tensor, reference: torch.Tensor, sr: int = SAMPLE_RATE, max_ms: float = 50.0
) -> Alignment:
    """Find the lag in [-max_ms, +max_ms] maximising the cross-correlation and crop both
    signals (`[N]`, `[1, N]` or `[1, 1, N]`) to their overlap."""
    est, ref = as_mono(estimate), as_mono(reference)
    max_lag = int(round(max_ms * sr / 1000.0))
    nfft = 1 << int(math.ceil(math.log2(max(est.numel() + ref.numel(), 2))))
    spec = torch.fft.rfft(est.double(), nfft) * torch.fft.rfft(ref.double(), nfft).conj()
    cc = torch.fft.irfft(spec, nfft)  # cc[k] = sum_n est[n + k] ref[n]; negatives wrap around
    lags = torch.arange(-max_lag, max_lag + 1)
    lags = lags[(lags < est.numel()) & (-lags < ref.numel())]
    lag = int(lags[int(cc[lags % nfft].argmax())])
    if lag >= 0:
        est, ref = est[lag:], ref
    else:
        est, ref = est, ref[-lag:]
    m = min(est.numel(), ref.numel())
    return Alignment(lag, est[:m], ref[:m])
