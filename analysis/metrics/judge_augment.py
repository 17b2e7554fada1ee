"""Generic degradations of real clips, so the audio judge hears the instrument through them.

A judge fitted on clean renders alone learns the exact recording: on the demo set it called
93 % of the bundled EnCodec's 6 kbps reconstructions of held-out notes something else (mostly
"flute"), although their pitch was kept. The judge is never trained on codec output; instead
each training clip also enters as `copies` degraded versions, each one or two of:

- white noise at 15-35 dB SNR (a noise floor),
- a low-pass biquad at 3-10 kHz (lost brightness),
- a peaking EQ of -8..+8 dB at 200 Hz-6 kHz, Q 1 (a coloured spectral envelope).

These are textbook augmentations chosen before measuring any codec with them; the ranges are
those of mild, audible degradations that leave an instrument recognisable to a listener.
Draws are seeded per clip, so a refit gives the same judge.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as AF

from codec.models.base import SAMPLE_RATE

NOISE_SNR_DB = (15.0, 35.0)
LOWPASS_HZ = (3000.0, 10000.0)
EQ_HZ = (200.0, 6000.0)
EQ_GAIN_DB = (-8.0, 8.0)
EQ_Q = 1.0


def degrade(wav: torch.Tensor, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """One random degradation of a mono clip `[N]` (noise, low-pass and/or EQ); same shape."""
    x = wav.detach().float().reshape(-1).clone()
    ops = {int(rng.integers(3))}
    if rng.random() < 0.5:
        ops.add(int(rng.integers(3)))
    if 1 in ops:
        x = AF.lowpass_biquad(x, sr, float(rng.uniform(*LOWPASS_HZ)))
    if 2 in ops:
        centre = math.exp(rng.uniform(math.log(EQ_HZ[0]), math.log(EQ_HZ[1])))
        x = AF.equalizer_biquad(x, sr, centre, float(rng.uniform(*EQ_GAIN_DB)), EQ_Q)
    if 0 in ops:
        rms = float(x.pow(2).mean().sqrt())
        noise = torch.from_numpy(rng.standard_normal(x.numel()).astype(np.float32))
        x = x + noise * rms / 10 ** (rng.uniform(*NOISE_SNR_DB) / 20)
    return x.reshape(wav.shape)


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of one training clip's degradations (independent of the others)."""
    return np.random.default_rng([seed, index])
