"""An auxiliary pitch head on the quantized tokens (stage 2, training only).

Measured on the bundled model (bench/results/pitch_misses.md): a linear probe reads the pitch
class from ALMTokenizer's pooled tokens ~90 % of the time but the octave only 55-61 %, and
12-18 % of its reconstructions come out an octave off. This head asks every quantized token to
name its clip's semitone (MIDI 21..108, classes across octaves, so the octave counts), the
target read from the input waveform with the same autocorrelation f0 estimator that the gate's
"pitch kept" uses. Clips without a clear f0 (noise, speech, music crops) are left out of the
loss. The head is a linear classifier, so what it rewards is pitch that is linearly readable
from each token; it is dropped at inference (nothing after the quantizer reads it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from codec.metrics import estimate_f0

MIDI_LOW, MIDI_HIGH = 21, 108  # A0 .. C8, the piano range (the corpus's and the demo's notes)
N_CLASSES = MIDI_HIGH - MIDI_LOW + 1
IGNORE = -100  # F.cross_entropy's ignore_index


def semitone_targets(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Per clip of `wav` `[B, 1, N]`: the class (MIDI - 21) of its f0, or `IGNORE` when it has
    no clear f0 or lies outside A0..C8. Long `[B]`, no gradient."""
    out = []
    with torch.no_grad():
        for clip in wav.detach().float().cpu():
            f0 = estimate_f0(clip[0], sample_rate)
            midi = round(69 + 12 * math.log2(f0 / 440.0)) if math.isfinite(f0) else None
            ok = midi is not None and MIDI_LOW <= midi <= MIDI_HIGH
            out.append(midi - MIDI_LOW if ok else IGNORE)
    return torch.tensor(out, dtype=torch.long, device=wav.device)


class PitchHead(nn.Module):
    """A linear semitone classifier applied to every quantized token `[B, D, n]`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, N_CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits `[B, n, N_CLASSES]`."""
        return self.proj(tokens.transpose(1, 2))

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every token of clip b against `targets[b]` (`IGNORE`d clips
        contribute nothing; 0 with a gradient path when every clip is ignored)."""
        logits = self(tokens).float()
        per_token = targets[:, None].expand(-1, logits.shape[1])
        if not bool((per_token != IGNORE).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.reshape(-1, N_CLASSES), per_token.reshape(-1),
                               ignore_index=IGNORE)  # fmt: skip
