"""Loading the two codecs the analysis compares (CLI and app share this)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from codec.base import Codec
from codec.checkpoint import CheckpointError, load_codec

log = logging.getLogger(__name__)

DEFAULT_ALM_CHECKPOINT = Path("checkpoints/almtokenizer_demo")
DEFAULT_ENCODEC_CHECKPOINT = Path("checkpoints/encodec_demo")


@dataclass
class CodecPair:
    """The ALMTokenizer and EnCodec models in use (either may be None when not requested)."""

    alm: Codec | None
    encodec: Codec | None

    def all(self) -> list[Codec]:
        return [c for c in (self.alm, self.encodec) if c is not None]


def load_codecs(
    alm_checkpoint: str | Path | None = DEFAULT_ALM_CHECKPOINT,
    encodec_checkpoint: str | Path | None = DEFAULT_ENCODEC_CHECKPOINT,
    encodec_weights: str | Path | None = None,
    encodec_bandwidth: float = 1.5,
) -> CodecPair:
    """Load ALMTokenizer from its checkpoint folder and EnCodec from the official weights file
    (when given) or its checkpoint folder. None skips a codec.

    Raises:
        CheckpointError: a missing, truncated or mismatched checkpoint (names the file).
    """
    alm = load_codec(alm_checkpoint) if alm_checkpoint is not None else None
    encodec: Codec | None = None
    if encodec_weights is not None or encodec_checkpoint is not None:
        from codec.encodec import load_encodec

        weights = Path(encodec_weights) if encodec_weights is not None else None
        if weights is not None and not weights.is_file():
            raise CheckpointError(f"EnCodec weights file {weights} does not exist")
        ckpt = None if weights is not None else encodec_checkpoint
        encodec = load_encodec(weights=weights, checkpoint=ckpt, bandwidth=encodec_bandwidth)
    for c in (alm, encodec):
        if c is not None:
            c.eval()
    return CodecPair(alm, encodec)
