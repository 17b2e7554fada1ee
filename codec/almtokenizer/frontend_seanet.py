"""SEANet front end: EnCodec-style strided conv encoder and mirrored transposed-conv decoder.

Built on `encodec.modules.SEANetEncoder` / `SEANetDecoder` with strides whose product is the
hop (8 * 6 * 5 * 2 = 480 samples, 50 Hz). Measured on this project: with the encodec modules'
default initialisation the decoder output is nearly independent of its input, so every conv is
re-initialised He-normal (kaiming) with zero bias.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from codec.almtokenizer.frontend_base import Frontend
from codec.init import OUTPUT_INIT_SCALE, scale_output_conv_


def he_init_(module: nn.Module) -> None:
    """Kaiming-normal weights and zero biases for every (weight-normed) conv of `module`.

    For weight-normed convs the direction `weight_v` gets the kaiming draw and the magnitude
    `weight_g` is set to its norm, so the effective weight equals the draw.
    """
    for m in module.modules():
        if not isinstance(m, nn.Conv1d | nn.ConvTranspose1d):
            continue
        if hasattr(m, "weight_v") and hasattr(m, "weight_g"):
            with torch.no_grad():
                nn.init.kaiming_normal_(m.weight_v, nonlinearity="relu")
                # encodec applies weight_norm over dim 0: g is [out_or_in, 1, 1]
                dims = tuple(range(1, m.weight_v.ndim))
                m.weight_g.copy_(torch.linalg.vector_norm(m.weight_v, dim=dims, keepdim=True))
        else:
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class SEANetFrontend(Frontend):
    """SEANet patchify / unpatchify.

    Args:
        patch_dim: d, encoder output channels.
        n_filters: base conv width.
        ratios: decoder up-sampling ratios (encoder: reversed); product = hop.
        n_residual_layers: residual blocks per stage.
        lstm: LSTM layers at the bottleneck (0: none).
        causal: causal convolutions.
    """

    def __init__(
        self,
        patch_dim: int = 128,
        n_filters: int = 32,
        ratios: list[int] | None = None,
        n_residual_layers: int = 1,
        lstm: int = 0,
        causal: bool = True,
    ) -> None:
        from encodec.modules import SEANetDecoder, SEANetEncoder

        ratios = list(ratios or [8, 6, 5, 2])
        hop = 1
        for r in ratios:
            hop *= r
        super().__init__(hop, patch_dim)
        kwargs = dict(
            channels=1,
            dimension=patch_dim,
            n_filters=n_filters,
            n_residual_layers=n_residual_layers,
            ratios=ratios,
            causal=causal,
            lstm=lstm,
            norm="weight_norm",
            # zero padding: encodec's default "reflect" mirrors *future* samples into the left
            # padding at the clip start, which breaks causality of the first frames
            pad_mode="constant",
        )
        with warnings.catch_warnings():  # torch deprecates the old weight_norm encodec uses
            warnings.simplefilter("ignore", FutureWarning)
            self.encoder = SEANetEncoder(**kwargs)
            self.decoder = SEANetDecoder(**kwargs)
        he_init_(self)
        scale_output_conv_(self.decoder, OUTPUT_INIT_SCALE)

    def _patchify(self, wav: torch.Tensor) -> torch.Tensor:
        return self.encoder(wav)

    def _unpatchify(self, e: torch.Tensor) -> torch.Tensor:
        return self.decoder(e)
