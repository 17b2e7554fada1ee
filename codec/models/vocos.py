"""Vocos: a frame-rate ConvNeXt decoder with an inverse-STFT head (Siuzdak, arXiv 2306.00814).

Latents `[B, D, T]` at the codec's frame rate go through a 1-d ConvNeXt stack that never
up-samples (every block runs at 75 Hz, not at 24 kHz as SEANet's last blocks do); a linear head
predicts, per frame, the log-magnitude and the phase of an STFT whose hop is the codec's hop,
and `torch.istft` turns them into the waveform. Published: on EnCodec's frozen tokens it beats
EnCodec's own decoder, and on CPU it runs about 29x faster than HiFi-GAN at equal size.

One decoder serves several settings (EnCodec's bandwidths, ALMTokenizer's windows): as Vocos
conditions on bandwidth, every LayerNorm is adaptive (`AdaLayerNorm`: a learnt scale and shift
per setting index). A decoder trained for some settings can start a decoder for more of them
(`remap_settings`: rows copied by setting value, a new setting's from the nearest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from codec.schema import ConfigError

# The head's log-magnitude is clipped here before exp (Vocos: magnitudes above ~1e2 are never
# needed for audio in [-1, 1] and an unclipped exp overflows in the first steps).
MAX_LOG_MAGNITUDE = 4.6


@dataclass
class VocosConfig:
    """The Vocos decoder's architecture (3.7 M parameters at the defaults with 128-d latents).

    Attributes:
        dim: ConvNeXt channels.
        intermediate_dim: the pointwise MLP's hidden width.
        n_layers: ConvNeXt blocks.
        n_fft: the iSTFT's FFT size (a multiple of the hop; 4 x hop as in Vocos).
        kernel_size: the depthwise convolution's kernel (odd).
    """

    dim: int = 256
    intermediate_dim: int = 768
    n_layers: int = 8
    n_fft: int = 1280
    kernel_size: int = 7

    def validate(self) -> None:
        """Raise ConfigError naming the first out-of-range field."""
        for key, low, high in (
            ("dim", 8, 4096), ("intermediate_dim", 8, 16384), ("n_layers", 1, 64),
            ("n_fft", 16, 16384), ("kernel_size", 1, 63),
        ):  # fmt: skip
            value = getattr(self, key)
            if not low <= value <= high:
                raise ConfigError(f"{key}: must be in [{low}, {high}], got {value}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size: must be odd, got {self.kernel_size}")


class AdaLayerNorm(nn.Module):
    """LayerNorm over channels whose scale and shift are looked up per setting index."""

    def __init__(self, n_settings: int, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Embedding(n_settings, dim)
        self.shift = nn.Embedding(n_settings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, setting: torch.Tensor) -> torch.Tensor:
        """`x` `[B, T, C]`, `setting` `[B]` (long) -> `[B, T, C]`."""
        x = F.layer_norm(x, (x.shape[-1],), eps=self.eps)
        return x * self.scale(setting)[:, None] + self.shift(setting)[:, None]


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, adaptive LayerNorm, pointwise MLP (GELU), layer scale, residual."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, n_settings: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = AdaLayerNorm(n_settings, dim)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1.0 / 8))

    def forward(self, x: torch.Tensor, setting: torch.Tensor) -> torch.Tensor:
        """`x` `[B, C, T]` -> `[B, C, T]`."""
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y, setting))))
        return x + (self.gamma * y).transpose(1, 2)


class VocosDecoder(nn.Module):
    """Latents `[B, input_dim, T]` -> waveform `[B, 1, T * hop]` through a ConvNeXt stack at
    the frame rate and an inverse STFT (hop = `hop_length`, Hann window of `n_fft`).

    Args:
        input_dim: latent channels.
        hop_length: waveform samples per latent frame.
        n_settings: how many settings (bandwidths, windows) the adaptive norms tell apart.
        config: the architecture.
    """

    def __init__(
        self, input_dim: int, hop_length: int, n_settings: int, config: VocosConfig
    ) -> None:
        super().__init__()
        config.validate()
        if config.n_fft < hop_length:
            raise ConfigError(f"n_fft: must be >= the hop ({hop_length}), got {config.n_fft}")
        if n_settings < 1:
            raise ValueError(f"n_settings must be >= 1, got {n_settings}")
        c = config
        self.hop_length = hop_length
        self.n_fft = c.n_fft
        self.n_settings = n_settings
        self.embed = nn.Conv1d(input_dim, c.dim, c.kernel_size, padding=c.kernel_size // 2)
        self.norm = AdaLayerNorm(n_settings, c.dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(c.dim, c.intermediate_dim, c.kernel_size, n_settings)
            for _ in range(c.n_layers)
        )
        self.final_norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head = nn.Linear(c.dim, c.n_fft + 2)  # n_fft / 2 + 1 magnitudes and phases
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.apply(_init_weights)

    def forward(self, latents: torch.Tensor, setting: int | torch.Tensor = 0) -> torch.Tensor:
        """`latents` `[B, D, T]`, `setting` an index in [0, n_settings) (int or `[B]`)."""
        batch, _, frames = latents.shape
        setting = torch.as_tensor(setting, device=latents.device, dtype=torch.long)
        if setting.dim() == 0:
            setting = setting.expand(batch)
        if int(setting.min()) < 0 or int(setting.max()) >= self.n_settings:
            raise ValueError(f"setting must lie in [0, {self.n_settings}), got {setting.tolist()}")
        x = self.embed(latents)
        x = self.norm(x.transpose(1, 2), setting).transpose(1, 2)
        for block in self.blocks:
            x = block(x, setting)
        x = self.head(self.final_norm(x.transpose(1, 2)))  # [B, T, n_fft + 2]
        with torch.autocast(latents.device.type, enabled=False):
            log_mag, phase = x.float().transpose(1, 2).chunk(2, dim=1)  # [B, F, T] each
            mag = torch.exp(log_mag.clamp(max=MAX_LOG_MAGNITUDE))
            spec = torch.polar(mag, phase)
            wav = torch.istft(
                spec,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.n_fft,
                window=self.window,
                center=True,
                length=frames * self.hop_length,
            )
        return wav[:, None]


def remap_settings(
    decoder: VocosDecoder,
    state: dict[str, torch.Tensor],
    prefix: str,
    source: Sequence[float],
    target: Sequence[float],
) -> tuple[dict[str, torch.Tensor], dict[float, float]]:
    """Re-index the adaptive norms of a Vocos state dict trained for the settings `source`
    (e.g. bandwidths [1.5, 3, 6]: row i is setting `source[i]`) for `decoder`, built for the
    settings `target` ([0.75, 1.5, 3, 6]).

    A setting in both keeps its trained rows, matched by value, never by index; a setting only
    in `target` starts from the rows of the nearest setting of `source` (nearest in ratio, as
    bitrates and windows are geometric; the lower one on a tie). Only the norms' scale and
    shift tables (`[n_settings, C]`) change; every other tensor is passed on as it is, for a
    strict load to check.

    Args:
        decoder: the decoder to load into (`n_settings == len(target)`).
        state: the checkpoint's state dict; `prefix` + the decoder's own names are its keys.
        prefix: where the decoder sits in `state`, e.g. "decoder.".
        source, target: the settings of the checkpoint and of `decoder`, in index order.

    Returns:
        The state dict with the norm tables re-indexed, and {target setting: the source
        setting its rows came from}.

    Raises:
        ValueError: a setting of `source` missing from `target` (a trained setting would be
            dropped), repeated or non-positive settings, a `target` that does not match the
            decoder, or norm tables in `state` that do not have `len(source)` rows.
    """
    src, tgt = [float(s) for s in source], [float(t) for t in target]
    for name, values in (("source", src), ("target", tgt)):
        if len(set(values)) != len(values) or any(not v > 0 for v in values):
            raise ValueError(f"{name} settings must be distinct and positive, got {values}")
    if len(tgt) != decoder.n_settings:
        raise ValueError(f"the decoder has {decoder.n_settings} settings, target lists {tgt}")
    dropped = [s for s in src if s not in tgt]
    if dropped:
        raise ValueError(f"settings {dropped} of {src} are not in {tgt}: they would be dropped")
    origin = {
        t: t if t in src else min(src, key=lambda s, t=t: (abs(math.log(t / s)), s)) for t in tgt
    }
    index = torch.tensor([src.index(origin[t]) for t in tgt])
    out = dict(state)
    for name, module in decoder.named_modules():
        if not isinstance(module, AdaLayerNorm):
            continue
        for table in ("scale", "shift"):
            key = f"{prefix}{name}.{table}.weight"
            if key not in state:
                continue  # missing: the strict load names it
            if state[key].dim() != 2 or state[key].shape[0] != len(src):
                raise ValueError(
                    f"{key} has shape {tuple(state[key].shape)}, not {len(src)} rows (one per "
                    f"setting of {src})"
                )
            out[key] = state[key].index_select(0, index).clone()
    return out, origin


def _init_weights(module: nn.Module) -> None:
    """Vocos's initialisation: truncated-normal (std 0.02) weights, zero biases."""
    if isinstance(module, nn.Conv1d | nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of `module`."""
    return sum(p.numel() for p in module.parameters())
