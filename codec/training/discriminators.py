"""Spectrogram discriminators for adversarial codec training.

One discriminator per (n_fft, hop, win) entry of the config; `discriminator.kind` picks what it
looks at:
- "mel" (`MelSpectrogramDiscriminator`): the log-magnitude mel spectrogram `[B, 1, frames,
  n_mels]`. Cheap, but blind to phase, and its wide upper mel bands cannot tell harmonics from
  a noise floor between them.
- "stft" (`STFTDiscriminator`, EnCodec's MS-STFT discriminator): the complex STFT as two
  channels (real, imaginary) `[B, 2, frames, n_fft // 2 + 1]`: every linear-frequency bin,
  with phase.
Either way a 2-D conv stack (kernels (3, 9) over (time, frequency), frequency stride 2, time
dilations) produces a logit map and the feature maps used for feature matching.
`MultiMelDiscriminator` is the ensemble of the configured kind.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from codec.models.base import SAMPLE_RATE
from codec.training.config import DiscriminatorConfig


@dataclass
class DiscriminatorOutput:
    """What one discriminator returns.

    Attributes:
        logits: real/fake score map `[B, 1, T', F']`.
        features: activations after every hidden conv (for feature matching), each `[B, C, T', F']`.
    """

    logits: torch.Tensor
    features: list[torch.Tensor]


class SpectrogramDiscriminator(nn.Module, ABC):
    """A 2-D conv stack over a spectrogram `[B, C, frames, bins]` of one resolution: kernels
    (3, 9) over (time, frequency), one frequency-strided conv per dilation (dilated along time),
    a (3, 3) conv and a (3, 3) output conv. Subclasses define `spectrogram`.

    Args:
        in_channels: C of the spectrogram.
        filters: channels of the first conv; later layers use `filters * filters_scale**i`,
            capped at `max_filters`.
        dilations: one strided conv per entry, dilated along time by that factor.
    """

    def __init__(
        self,
        in_channels: int,
        filters: int = 32,
        filters_scale: int = 1,
        max_filters: int = 256,
        dilations: tuple[int, ...] | list[int] = (1, 2, 4),
    ) -> None:
        super().__init__()
        convs = [weight_norm(nn.Conv2d(in_channels, filters, (3, 9), padding=(1, 4)))]
        ch = filters
        for i, d in enumerate(dilations):
            out = min(filters * filters_scale ** (i + 1), max_filters)
            convs.append(weight_norm(
                nn.Conv2d(ch, out, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))
            ))  # fmt: skip
            ch = out
        convs.append(weight_norm(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(0.2)

    @abstractmethod
    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """`[B, 1, N]` waveform -> `[B, C, frames, bins]`."""

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        """Score a waveform batch `[B, 1, N]`."""
        x = self.spectrogram(wav)
        features = []
        for conv in self.convs:
            x = self.act(conv(x))
            features.append(x)
        return DiscriminatorOutput(logits=self.conv_post(x), features=features)


class STFTDiscriminator(SpectrogramDiscriminator):
    """A 2-D conv discriminator over the complex STFT of one resolution (EnCodec's MS-STFT
    discriminator): real and imaginary parts as two channels, so it sees phase and every
    linear-frequency bin.

    Args:
        n_fft, hop_length, win_length: the STFT resolution.
        filters, filters_scale, max_filters, dilations: as `SpectrogramDiscriminator`.
    """

    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        win_length: int,
        filters: int = 32,
        filters_scale: int = 1,
        max_filters: int = 256,
        dilations: tuple[int, ...] | list[int] = (1, 2, 4),
    ) -> None:
        super().__init__(2, filters, filters_scale, max_filters, dilations)
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """`[B, 1, N]` waveform -> `[B, 2, frames, n_fft // 2 + 1]` (real, imaginary; float32)."""
        with torch.autocast(wav.device.type, enabled=False):
            spec = torch.stft(
                wav.float().flatten(0, 1), self.n_fft, self.hop_length, self.win_length,
                window=self.window, return_complex=True, normalized=True,
            )  # fmt: skip
        return torch.view_as_real(spec).permute(0, 3, 2, 1)  # [B, 2, frames, bins]


class MelSpectrogramDiscriminator(SpectrogramDiscriminator):
    """A 2-D conv discriminator over the log-mel spectrogram of one resolution.

    Args:
        n_fft, hop_length, win_length: the STFT resolution.
        n_mels: mel bins.
        filters: channels of the first conv; later layers use `filters * filters_scale**i`,
            capped at `max_filters`.
        dilations: one strided conv per entry, dilated along time by that factor.
    """

    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        win_length: int,
        n_mels: int,
        filters: int = 32,
        filters_scale: int = 1,
        max_filters: int = 256,
        dilations: tuple[int, ...] | list[int] = (1, 2, 4),
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        super().__init__(1, filters, filters_scale, max_filters, dilations)
        with warnings.catch_warnings():
            # small n_fft with many mel bins leaves some filters empty; that is harmless here
            warnings.simplefilter("ignore", UserWarning)
            self.mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate,
                n_fft=n_fft,
                win_length=win_length,
                hop_length=hop_length,
                n_mels=n_mels,
                power=1.0,
            )

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """`[B, 1, N]` waveform -> log-mel `[B, 1, frames, n_mels]` (computed in float32)."""
        with torch.autocast(wav.device.type, enabled=False):
            mel = self.mel(wav.float())  # [B, 1, n_mels, frames]
        return torch.log(mel.clamp_min(1e-5)).transpose(-1, -2)


class MultiMelDiscriminator(nn.Module):
    """The ensemble: one discriminator of `cfg.kind` per configured resolution."""

    def __init__(self, cfg: DiscriminatorConfig, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        if cfg.kind == "stft":
            self.discriminators = nn.ModuleList(
                STFTDiscriminator(
                    nf, hop, win, cfg.filters, cfg.filters_scale, cfg.max_filters, cfg.dilations
                )  # fmt: skip
                for nf, hop, win in zip(cfg.n_fft, cfg.hop_lengths, cfg.win_lengths)
            )
            return
        self.discriminators = nn.ModuleList(
            MelSpectrogramDiscriminator(
                n_fft=nf,
                hop_length=hop,
                win_length=win,
                n_mels=nm,
                filters=cfg.filters,
                filters_scale=cfg.filters_scale,
                max_filters=cfg.max_filters,
                dilations=cfg.dilations,
                sample_rate=sample_rate,
            )
            for nf, hop, win, nm in zip(
                cfg.n_fft, cfg.hop_lengths, cfg.win_lengths, cfg.n_mels_list
            )
        )

    def forward(self, wav: torch.Tensor) -> list[DiscriminatorOutput]:
        """Score `[B, 1, N]` with every discriminator."""
        return [d(wav) for d in self.discriminators]
