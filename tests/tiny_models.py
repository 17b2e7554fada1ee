"""The CPU-sized models and datasets the tests share (a helper module: no tests here; the
fixtures built on it are in tests/conftest.py).

- `tiny_alm` / `tiny_encodec`: CPU-sized real ALMTokenizer and EnCodecCodec models, randomly
  initialised, whose codebooks are initialised by one training-mode forward (k-means on a
  batch), so quantized latents are not all equal.
- `untrained_tiny_alm` / `untrained_tiny_encodec`: smaller still, any config key overridable,
  codebooks not initialised (checkpoint and robustness tests); `kmeans_warm` initialises them.
- `timbre_dataset`: `tests.fixtures.make_goodsounds` in the real layout, with each file rewritten
  with an instrument-specific timbre (harmonic recipe) so instruments differ in latent space.
"""

from __future__ import annotations

import copy
import functools
import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from codec.models.almtokenizer import ALMTokenizer
from codec.models.encodec import EnCodecCodec
from tests.fixtures import make_goodsounds, midi_hz

SR = 24000
TINY_ALM = {
    "base_args": {
        "dim": 32, "n_heads": 2, "n_layers": 1, "decoder_n_layers": 1, "ffn_dim": 64,
        "n_codebooks": 2, "codebook_size": 16, "codebook_dim": 8, "patch_dim": 16,
        "encodec_n_filters": 2, "encodec_lstm": 0, "ar_layers": 0,
        "kmeans_iters": 2,
    },
    "mae_args": {"n_layers": 0},
}  # fmt: skip
TINY_ENCODEC = {
    "n_filters": 4, "lstm": 0, "n_q": 4, "target_bandwidths": [1.5, 3.0], "bandwidth": 1.5,
    "train_bandwidths": [1.5, 3.0], "kmeans_iters": 2,
}  # fmt: skip
TINY_VOCOS = {"dim": 16, "intermediate_dim": 32, "n_layers": 2, "n_fft": 1280}
INSTRUMENTS = ("flute", "cello", "clarinet", "bass")
MIDIS = (48, 57, 60, 64, 69, 72)

# harmonic amplitude recipes (k = 1..12) and noise level per instrument
_RECIPES = {
    "flute": (lambda k: 1.0 if k == 1 else 0.05 / k, 0.02),
    "cello": (lambda k: 1.0 / k, 0.0),
    "clarinet": (lambda k: 1.0 / k if k % 2 else 0.0, 0.0),
    "bass": (lambda k: 1.0 / k**2, 0.05),
}


def _warmup_batch(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(SR // 2) / SR
    tones = torch.stack([torch.sin(2 * math.pi * f * t) for f in (110.0, 220.0, 330.0, 440.0)])
    return (0.3 * tones + 0.05 * torch.randn(4, SR // 2, generator=g))[:, None]


def tiny_alm(seed: int = 0) -> ALMTokenizer:
    """A tiny random ALMTokenizer with k-means-initialised codebooks, in eval mode (a fresh
    copy of a per-seed cached model, so tests may modify it)."""
    return copy.deepcopy(_tiny_alm(seed))


def tiny_encodec(seed: int = 0) -> EnCodecCodec:
    """A tiny random EnCodecCodec with k-means-initialised codebooks, in eval mode (a fresh
    copy of a per-seed cached model)."""
    return copy.deepcopy(_tiny_encodec(seed))


@functools.cache
def _tiny_alm(seed: int) -> ALMTokenizer:
    torch.manual_seed(seed)
    model = ALMTokenizer.from_config(TINY_ALM)
    model.train()
    with torch.no_grad():
        model(_warmup_batch(seed + 1), window=4, stage=2)
    return model.eval()


@functools.cache
def _tiny_encodec(seed: int) -> EnCodecCodec:
    torch.manual_seed(seed)
    random.seed(seed)  # the training forward draws its bandwidth with `random`
    model = EnCodecCodec.from_config(TINY_ENCODEC)
    model.train()
    with torch.no_grad():
        model(_warmup_batch(seed + 1))
    return model.eval()


ROBUST_ALM_ARGS = dict(
    patch_dim=16, dim=32, n_heads=2, n_layers=1, decoder_n_layers=1, ffn_dim=64,
    codebook_size=16, codebook_dim=8, ar_layers=1, ar_dim=16, ar_n_heads=2,
    encodec_n_filters=2, encodec_lstm=0,
)  # fmt: skip
ROBUST_ENCODEC = dict(
    dimension=16, n_filters=4, lstm=0, n_q=4, bins=16, target_bandwidths=[0.3, 0.6, 1.2],
    bandwidth=0.6, train_bandwidths=[0.6], kmeans_iters=2,
)  # fmt: skip


def untrained_tiny_alm(**over: object) -> ALMTokenizer:
    """A tiny ALMTokenizer (seed 0, AR head and MAE branch of one layer each), eval mode,
    codebooks not initialised; `over` replaces base_args keys."""
    from codec.models.almtokenizer import ALMConfig, BaseArgs, MAEArgs

    torch.manual_seed(0)
    args = {**ROBUST_ALM_ARGS, **over}
    return ALMTokenizer(ALMConfig(BaseArgs(**args), MAEArgs(dim=16, n_heads=2, n_layers=1))).eval()


def untrained_tiny_encodec(**over: object) -> EnCodecCodec:
    """A tiny EnCodecCodec (seed 0, 4 codebooks of 16), eval mode, codebooks not initialised;
    `over` replaces config keys."""
    from codec.models.encodec import EnCodecConfig

    torch.manual_seed(0)
    return EnCodecCodec(EnCodecConfig.from_dict({**ROBUST_ENCODEC, **over})).eval()


def kmeans_warm(model: torch.nn.Module) -> torch.nn.Module:
    """One training forward on a random batch (k-means init of the codebooks), then eval."""
    model.train()
    model(torch.randn(2, 1, 4800) * 0.1, 2, stage=2)
    return model.eval()


def timbre_tone(instrument: str, midi: int, seconds: float, seed: int) -> np.ndarray:
    """`[N]` float32 at 24 kHz: the instrument's harmonic recipe at the MIDI pitch."""
    amp, noise = _RECIPES[instrument]
    f0 = midi_hz(midi)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(amp(k) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 13) if k * f0 < SR / 2)
    x = x / (np.abs(x).max() + 1e-9)
    x = x + noise * np.random.default_rng(seed).standard_normal(len(t))
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return (0.4 * x * fade).astype(np.float32)


def timbre_dataset(
    root: Path,
    instruments: Sequence[str] = INSTRUMENTS,
    midis: Sequence[int] = MIDIS,
    microphones: Sequence[str] = ("akg",),
    seconds: float = 0.5,
) -> Path:
    """A Good-sounds-layout folder whose single notes carry instrument-specific timbres."""
    fx = make_goodsounds(
        root, instruments, midis, microphones, n_scales=0, extra_klass=None,
        misleading_pack=False, seconds=0.05, sr=SR,
    )  # fmt: skip
    for s in fx.sounds:
        for i, rel in enumerate(s["files"].values()):
            x = timbre_tone(s["instrument"], s["midi"], seconds, seed=s["id"] * 10 + i)
            sf.write(fx.root / rel, x, SR, subtype="FLOAT")
    return fx.root


def save_tiny_lm(
    codec: torch.nn.Module, window: int | None, folder: Path, context: int = 400, seed: int = 0
) -> Path:
    """A tiny random delay token LM saved at `folder`, whose tokenizer record names `codec` (a
    loaded codec: its checkpoint hash; at `window`, or at its current bandwidth)."""
    from codec.lm import LMModelConfig, TokenizerRecord, TokenShape, build_lm, save_lm

    rec = TokenizerRecord(
        codec.name, codec.checkpoint_hash, window, getattr(codec, "bandwidth", None),
        codec.num_codebooks, codec.codebook_size, float(codec.frame_rate(window)),
    )  # fmt: skip
    torch.manual_seed(seed)
    lm = build_lm(LMModelConfig(dim=32, n_layers=1, n_heads=2, dropout=0.0),
                  TokenShape(rec.n_q, rec.codebook_size, context))  # fmt: skip
    lm.tokenizer = rec
    return save_lm(lm, folder)
