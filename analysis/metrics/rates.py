"""Token rate and bitrate of a codec setting, straight from the Codec interface."""

from __future__ import annotations

from dataclasses import dataclass

from codec.models.base import Codec


@dataclass
class RateInfo:
    """Rates of a codec setting.

    Attributes:
        window: effective window (None for EnCodec).
        tokens_per_second: latent frames per second (tokens per codebook), `frame_rate(window)`.
        codes_per_second: integer codes per second over all codebooks.
        bitrate: bits per second, `codec.bitrate(window)`.
        num_codebooks: n_q in use.
    """

    window: int | None
    tokens_per_second: float
    codes_per_second: float
    bitrate: float
    num_codebooks: int


def codec_rates(codec: Codec, window: int | None = None) -> RateInfo:
    """Token rate and bitrate straight from the Codec interface."""
    fr = float(codec.frame_rate(window))
    return RateInfo(
        window, fr, fr * codec.num_codebooks, float(codec.bitrate(window)), codec.num_codebooks
    )
