"""STFT front end: ConvNeXt over log-magnitude STFT frames; Vocos-style iSTFT head.

patchify: log|STFT| with hop = hop_length / merge, `merge` consecutive STFT frames stacked into
one patch frame (two 240-sample hops per 50 Hz frame by default), a pointwise embedding,
ConvNeXt blocks and a projection to d channels.
unpatchify: patch frames linearly interpolated to the STFT frame rate (`merge` per patch frame),
projection to the backbone width, ConvNeXt blocks, a linear layer predicting log-magnitude and
phase of each STFT frame, and an inverse STFT with "same" padding, so T patch frames give
exactly T * hop_length samples.

Causal mode pads the STFT on the left only and uses left-padded depthwise convolutions in the
patchify ConvNeXt, so patch frame t depends only on samples before (t + 1) * hop_length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codec.almtokenizer.frontend_base import Frontend


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> LayerNorm -> pointwise MLP -> layer scale, residual.

    Args:
        dim: channels C.
        hidden: MLP hidden size.
        causal: pad the depthwise conv on the left only.
        layer_scale: initial value of the per-channel residual scale.
    """

    def __init__(self, dim: int, hidden: int, causal: bool, layer_scale: float) -> None:
        super().__init__()
        self.causal = causal
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, hidden)
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, C, T]` -> `[B, C, T]`."""
        y = self.dwconv(F.pad(x, (6, 0) if self.causal else (3, 3)))
        y = self.pw2(F.gelu(self.pw1(self.norm(y.transpose(1, 2)))))
        return x + (self.gamma * y).transpose(1, 2)


class ConvNeXtStack(nn.Module):
    """LayerNorm'd embedding followed by `n_layers` ConvNeXt blocks and a final LayerNorm."""

    def __init__(self, in_dim: int, dim: int, n_layers: int, causal: bool) -> None:
        super().__init__()
        self.embed = nn.Conv1d(in_dim, dim, kernel_size=1)
        self.norm_in = nn.LayerNorm(dim)
        scale = 1.0 / max(n_layers, 1)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, 3 * dim, causal, scale) for _ in range(n_layers)
        )
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, in_dim, T]` -> `[B, dim, T]`."""
        x = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm_out(x.transpose(1, 2)).transpose(1, 2)


def istft_same(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse STFT with "same" padding: `[B, n_fft/2 + 1, F]` complex -> `[B, F * hop]`.

    Windowed overlap-add normalised by the window envelope, trimmed by (n_fft - hop) / 2 on each
    side (as in Vocos), so the length is exactly F * hop.
    """
    B, _, n_frames = spec.shape
    pad = (n_fft - hop) // 2
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (B, n_fft, F)
    out_len = (n_frames - 1) * hop + n_fft
    y = F.fold(frames, output_size=(1, out_len), kernel_size=(1, n_fft), stride=(1, hop))
    env = F.fold(
        window.square()[None, :, None].expand(1, n_fft, n_frames),
        output_size=(1, out_len),
        kernel_size=(1, n_fft),
        stride=(1, hop),
    )
    end = pad + n_frames * hop
    return y[:, 0, 0, pad:end] / env[0, 0, 0, pad:end].clamp_min(1e-8)


class STFTFrontend(Frontend):
    """ConvNeXt-over-STFT patchify and Vocos-style unpatchify.

    Args:
        hop_length: samples per patch frame (480 at 50 Hz).
        patch_dim: d.
        n_fft: FFT / window size (Hann).
        merge: STFT frames per patch frame (STFT hop = hop_length / merge).
        dim: ConvNeXt width.
        encoder_layers, decoder_layers: ConvNeXt blocks of patchify / unpatchify.
        causal: causal patchify (see module docstring).
    """

    def __init__(
        self,
        hop_length: int = 480,
        patch_dim: int = 128,
        n_fft: int = 960,
        merge: int = 2,
        dim: int = 256,
        encoder_layers: int = 3,
        decoder_layers: int = 6,
        causal: bool = True,
    ) -> None:
        super().__init__(hop_length, patch_dim)
        if hop_length % merge:
            raise ValueError(f"merge {merge} must divide hop_length {hop_length}")
        self.n_fft, self.merge, self.causal = n_fft, merge, causal
        self.stft_hop = hop_length // merge
        if (n_fft - self.stft_hop) % 2:
            raise ValueError(f"n_fft - stft hop must be even, got {n_fft} - {self.stft_hop}")
        self.n_bins = n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.encoder = ConvNeXtStack(self.n_bins * merge, dim, encoder_layers, causal)
        self.to_patch = nn.Conv1d(dim, patch_dim, kernel_size=1)
        self.decoder = ConvNeXtStack(patch_dim, dim, decoder_layers, causal=False)
        self.head = nn.Linear(dim, 2 * self.n_bins)

    def _patchify(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav[:, 0]
        left = self.n_fft - self.stft_hop
        x = F.pad(x, (left, 0) if self.causal else (left // 2, left // 2))
        spec = torch.stft(
            x, self.n_fft, self.stft_hop, window=self.window, center=False, return_complex=True
        )  # (B, n_bins, T * merge)
        logmag = spec.abs().clamp_min(1e-5).log()
        B, Fb, S = logmag.shape
        T = S // self.merge
        # stack `merge` consecutive STFT frames: (B, Fb, T, merge) -> (B, merge * Fb, T)
        x = logmag.reshape(B, Fb, T, self.merge).permute(0, 3, 1, 2).reshape(B, self.merge * Fb, T)
        return self.to_patch(self.encoder(x))

    def _unpatchify(self, e: torch.Tensor) -> torch.Tensor:
        B, _, T = e.shape
        if self.merge > 1:
            # one feature vector per STFT frame: predicting the `merge` frames of a patch from one
            # vector with separate weights makes even/odd frames differ systematically, a
            # 1 / hop_length (50 Hz) buzz that the pilot measured as the dominant pitch
            e = F.interpolate(e, scale_factor=self.merge, mode="linear", align_corners=False)
        h = self.head(self.decoder(e).transpose(1, 2))  # (B, T * merge, 2 * n_bins)
        logmag, phase = h[..., : self.n_bins], h[..., self.n_bins :]
        mag = logmag.clamp(max=10.0).exp()
        spec = torch.polar(mag.float(), phase.float()).transpose(1, 2)  # (B, n_bins, T * merge)
        wav = istft_same(spec, self.n_fft, self.stft_hop, self.window)
        return wav[:, None].to(e.dtype)
