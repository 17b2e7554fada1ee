"""Waveform metrics shared by training (eval scalars) and `analysis.metrics`.

All functions take float tensors `[..., N]` at 24 kHz unless a rate is given.
"""

from __future__ import annotations

import math

import torch
import torchaudio

from codec.models.base import SAMPLE_RATE

_MEL_CACHE: dict[tuple[int, int, int, str], torchaudio.transforms.MelSpectrogram] = {}


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last axis: `[...]`."""
    ref = reference - reference.mean(-1, keepdim=True)
    est = estimate - estimate.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def _mel(
    n_fft: int, hop: int, n_mels: int, device: torch.device
) -> torchaudio.transforms.MelSpectrogram:
    key = (n_fft, hop, n_mels, str(device))
    if key not in _MEL_CACHE:
        # built outside inference mode: a module first made inside `torch.inference_mode()`
        # (evaluation) would hold inference tensors that training's autograd later refuses
        with torch.inference_mode(False):
            _MEL_CACHE[key] = _build_mel(n_fft, hop, n_mels, device)
    return _MEL_CACHE[key]


def _build_mel(
    n_fft: int, hop: int, n_mels: int, device: torch.device
) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=1.0
    ).to(device)


def log_mel(wav: torch.Tensor, n_fft: int = 1024, hop: int = 256, n_mels: int = 80) -> torch.Tensor:
    """Log-magnitude mel spectrogram `[..., n_mels, frames]` (log10, floor 1e-5)."""
    mel = _mel(n_fft, hop, n_mels, wav.device)(wav.float())
    return torch.log10(mel.clamp_min(1e-5))


def mel_distance(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    scales: tuple[tuple[int, int, int], ...] = ((512, 128, 64), (1024, 256, 80), (2048, 512, 128)),
) -> torch.Tensor:
    """Multi-scale log-mel L1 distance, averaged over scales: a scalar tensor."""
    n = min(estimate.shape[-1], reference.shape[-1])
    est, ref = estimate[..., :n], reference[..., :n]
    return torch.stack([(log_mel(est, *s) - log_mel(ref, *s)).abs().mean() for s in scales]).mean()


def estimate_f0(
    wav: torch.Tensor, sr: int = SAMPLE_RATE, fmin: float = 30.0, fmax: float = 2400.0
) -> float:
    """Fundamental frequency (Hz) of a mostly-stationary note `[N]` or `[1, N]`.

    Normalised autocorrelation over the loudest 0.5 s, with a YIN-style preference for the
    shortest lag whose correlation is close to the best (avoids octave-low errors). Returns
    NaN for silence or unpitched input.
    """
    x = wav.reshape(-1).double()
    if x.numel() < sr // 10 or x.abs().max() < 1e-4:
        return math.nan
    seg = int(0.5 * sr)
    if x.numel() > seg:
        energy = torch.nn.functional.avg_pool1d(x.pow(2)[None, None], seg, stride=seg // 4)
        start = int(energy.reshape(-1).argmax()) * (seg // 4)
        x = x[start : start + seg]
    x = x - x.mean()
    n = x.numel()
    spec = torch.fft.rfft(x, 2 * n)
    ac = torch.fft.irfft(spec * spec.conj(), 2 * n)[:n]
    ac = ac / (torch.arange(n, 0, -1, dtype=ac.dtype))  # unbiased
    if ac[0] <= 0:
        return math.nan
    ac = ac / ac[0]
    lo, hi = int(sr / fmax), min(int(sr / fmin), n - 2)
    if hi <= lo + 2:
        return math.nan
    seg_ac = ac[lo:hi]
    best = float(seg_ac.max())
    if best < 0.3:
        return math.nan
    # first local maximum within 90% of the best peak
    for i in range(1, seg_ac.numel() - 1):
        v = seg_ac[i]
        if v >= 0.9 * best and v >= seg_ac[i - 1] and v >= seg_ac[i + 1]:
            lag = lo + i
            # parabolic interpolation
            a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
            return float(sr / (lag + shift))
    return float(sr / (lo + int(seg_ac.argmax())))


def pitch_matches(
    estimate: torch.Tensor, reference: torch.Tensor, sr: int = SAMPLE_RATE, cents: float = 50.0
) -> bool:
    """True when both signals have a pitch and they agree within `cents` (default: a quarter
    tone each way, i.e. the same semitone)."""
    f_est, f_ref = estimate_f0(estimate, sr), estimate_f0(reference, sr)
    if math.isnan(f_est) or math.isnan(f_ref):
        return False
    return abs(1200 * math.log2(f_est / f_ref)) <= cents
