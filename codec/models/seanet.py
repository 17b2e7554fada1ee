"""The SEANet encoder/decoder pair of the `encodec` package, built in one place.

Both the EnCodec backend (`codec.models.encodec`) and ALMTokenizer's frozen front end
(`codec.models.almtokenizer.frontend_encodec`) stand on this autoencoder; building it here
keeps their architectures identical, so one can load the other's weights strictly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import nn


def build_seanet(
    dimension: int,
    n_filters: int,
    n_residual_layers: int,
    ratios: Sequence[int],
    norm: str,
    causal: bool,
    lstm: int,
) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder): mono waveform `[B, 1, N]` <-> latents `[B, dimension, T]`, with
    T = N / prod(ratios)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package imports and uses the deprecated weight_norm
        from encodec.modules import SEANetDecoder, SEANetEncoder

        common = dict(
            channels=1, dimension=dimension, n_filters=n_filters,
            n_residual_layers=n_residual_layers, ratios=list(ratios), norm=norm, causal=causal,
            lstm=lstm,
        )  # fmt: skip
        return SEANetEncoder(**common), SEANetDecoder(**common)
