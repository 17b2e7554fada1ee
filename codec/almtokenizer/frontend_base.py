"""The patchify / unpatchify front end: waveform <-> patch frames `e` at a fixed frame rate.

Every front end maps `[B, 1, N]` to `[B, d, ceil(N / hop)]` and back. Implementations live one
per file (`frontend_stft`, `frontend_seanet`, `frontend_encodec`); `build_frontend` picks one
from `BaseArgs`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from codec.almtokenizer.config import BaseArgs
from codec.base import fit_length


class Frontend(nn.Module, ABC):
    """Base class of the front ends.

    Attributes:
        hop_length: waveform samples per patch frame (sample_rate / frame_rate).
        patch_dim: d, channels of the patch frames.
        trainable: False for front ends that are always frozen (pretrained EnCodec).
    """

    trainable: bool = True

    def __init__(self, hop_length: int, patch_dim: int) -> None:
        super().__init__()
        self.hop_length, self.patch_dim = hop_length, patch_dim

    def pad_to_hop(self, wav: torch.Tensor) -> torch.Tensor:
        """Zero-pad `[B, 1, N]` on the right to a multiple of the hop."""
        rem = wav.shape[-1] % self.hop_length
        return F.pad(wav, (0, self.hop_length - rem)) if rem else wav

    def patchify(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform `[B, 1, N]` -> patch frames `[B, d, T]`, T = ceil(N / hop)."""
        if wav.ndim != 3 or wav.shape[1] != 1:
            raise ValueError(f"patchify expects [B, 1, N], got {tuple(wav.shape)}")
        e = self._patchify(self.pad_to_hop(wav))
        expected = -(-wav.shape[-1] // self.hop_length)
        if e.shape[-1] != expected:  # a bug in a front end, never a user error
            raise RuntimeError(f"{type(self).__name__} gave {e.shape[-1]} frames, not {expected}")
        return e

    def unpatchify(self, e: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """Patch frames `[B, d, T]` -> waveform `[B, 1, N]`; N = T * hop, or `num_samples`
        (trimmed / zero-padded) when given."""
        if e.ndim != 3 or e.shape[1] != self.patch_dim:
            raise ValueError(f"unpatchify expects [B, {self.patch_dim}, T], got {tuple(e.shape)}")
        wav = self._unpatchify(e)
        return fit_length(wav, num_samples)

    @abstractmethod
    def _patchify(self, wav: torch.Tensor) -> torch.Tensor:
        """`[B, 1, T * hop]` -> `[B, d, T]`."""

    @abstractmethod
    def _unpatchify(self, e: torch.Tensor) -> torch.Tensor:
        """`[B, d, T]` -> `[B, 1, T * hop]`."""


def build_frontend(args: BaseArgs) -> Frontend:
    """The front end named by `args.frontend`, sized by `args`."""
    if args.frontend == "stft":
        from codec.almtokenizer.frontend_stft import STFTFrontend

        return STFTFrontend(
            hop_length=args.hop_length,
            patch_dim=args.patch_dim,
            n_fft=args.stft_n_fft,
            merge=args.stft_merge,
            dim=args.stft_dim,
            encoder_layers=args.stft_encoder_layers,
            decoder_layers=args.stft_decoder_layers,
            causal=args.causal,
        )
    if args.frontend == "seanet":
        from codec.almtokenizer.frontend_seanet import SEANetFrontend

        return SEANetFrontend(
            patch_dim=args.patch_dim,
            n_filters=args.seanet_filters,
            ratios=list(args.seanet_ratios),
            n_residual_layers=args.seanet_residual_layers,
            lstm=args.seanet_lstm,
            causal=args.causal,
        )
    if args.frontend == "encodec":
        from codec.almtokenizer.frontend_encodec import EncodecFrontend

        return EncodecFrontend(weights_path=args.encodec_weights)
    raise ValueError(f"unknown front end {args.frontend!r}")
