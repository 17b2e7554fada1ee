"""Energy per frequency band of a decoded clip against its reference, in dB.

Where a codec loses speech's formants (1-4 kHz) or the upper harmonics of notes (4-12 kHz)
shows here before any listener is asked: STFT 1024 (Hann, hop 256) power summed over each
band and over the clip, decoded minus reference. 0 dB: the band's energy is kept; -8 dB: the
band lost 84 % of its energy (or its harmonics were replaced by a much weaker floor).
"""

from __future__ import annotations

import math

import torch

from analysis.metrics.align import as_mono
from analysis.metrics.scored import NotScored, is_silent

# (name, low Hz, high Hz)
BANDS: tuple[tuple[str, float, float], ...] = (
    ("<1k", 0.0, 1000.0),
    ("1-4k", 1000.0, 4000.0),
    ("4-12k", 4000.0, 12000.0),
)
N_FFT, HOP = 1024, 256
EMPTY_BAND = 1e-4  # -40 dB of the clip's energy


def band_energy(wav: torch.Tensor, sr: int) -> dict[str, float]:
    """Energy (sum of STFT power) of each band in `BANDS`, linear."""
    x = as_mono(wav).double()
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=x.dtype),
                      return_complex=True).abs().pow(2)  # fmt: skip
    freqs = torch.fft.rfftfreq(N_FFT, 1.0 / sr, dtype=x.dtype)
    return {name: float(spec[(freqs >= lo) & (freqs < hi)].sum()) for name, lo, hi in BANDS}


def band_loss_db(
    reference: torch.Tensor, estimate: torch.Tensor, sr: int
) -> dict[str, float] | NotScored:
    """Decoded minus reference energy per band, in dB (NaN for a band that holds under -40 dB
    of the reference's energy)."""
    if is_silent(as_mono(reference)):
        return NotScored("silent reference")
    ref, est = band_energy(reference, sr), band_energy(estimate, sr)
    total = sum(ref.values())
    out = {}
    for name, _, hi in BANDS:
        # a band that holds almost none of the reference (a phone prompt above 4 kHz) is not
        # scored: its ratio would measure the codec's noise floor, not what it kept
        if hi > sr / 2 or ref[name] <= EMPTY_BAND * total:
            out[name] = math.nan
        else:
            out[name] = 10.0 * math.log10(max(est[name], 1e-20) / ref[name])
    return out
