"""Pretrained EnCodec front end: the official 24 kHz EnCodec encoder / decoder, frozen.

The continuous (pre-quantization) 128-channel encoder output at 75 Hz serves as the patch
frames, as in the reference reproduction. The weights come from the official release file
`encodec_24khz-d7cc33bc.th` (the torch hub cache by default). That file is a torch pickle; it
is read by `codec.encodec.load_official`, which checks its sha256 before a
`torch.load(weights_only=True)` and raises `EnCodecWeightsError` naming the file for a corrupt
or foreign one. When the file is absent the model can still be built (so a checkpoint that
already holds the weights loads offline), but patchify / unpatchify raise a FileNotFoundError
naming the expected path until weights are loaded.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from codec.almtokenizer.frontend_base import Frontend

log = logging.getLogger(__name__)

ENCODEC_WEIGHTS_NAME = "encodec_24khz-d7cc33bc.th"


def default_weights_path() -> Path:
    """`<torch hub dir>/checkpoints/encodec_24khz-d7cc33bc.th`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ENCODEC_WEIGHTS_NAME


class EncodecFrontend(Frontend):
    """Frozen pretrained EnCodec 24 kHz encoder (patchify) and decoder (unpatchify).

    Args:
        weights_path: the official weights file; None: `default_weights_path()`.
    """

    trainable = False

    def __init__(self, weights_path: str | None = None) -> None:
        from encodec import modules as m

        super().__init__(hop_length=320, patch_dim=128)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.encoder = m.SEANetEncoder(channels=1, norm="weight_norm", causal=True)
            self.decoder = m.SEANetDecoder(channels=1, norm="weight_norm", causal=True)
        # 1 once official weights are in (saved with the checkpoint, so reloading needs no file)
        self.register_buffer("weights_loaded", torch.zeros((), dtype=torch.long))
        self.weights_path = Path(weights_path) if weights_path else default_weights_path()
        if self.weights_path.is_file():
            self.load_official(self.weights_path)
        else:
            log.warning(
                "EnCodec weights %s not found; load a checkpoint before use", self.weights_path
            )
        self.requires_grad_(False)
        self.train(False)

    def load_official(self, path: str | Path) -> None:
        """Load the encoder and decoder of the official EnCodec 24 kHz weights file.

        Raises:
            EnCodecWeightsError: the file is unreadable, fails the sha256 check or holds
                another architecture (see `codec.encodec.load_official`).
        """
        from codec.encodec import load_official  # the one hash-checked reader of that file

        official = load_official(path)
        self.encoder.load_state_dict(official.encoder.state_dict())
        self.decoder.load_state_dict(official.decoder.state_dict())
        self.weights_loaded.fill_(1)
        log.info("loaded pretrained EnCodec encoder/decoder from %s", path)

    def train(self, mode: bool = True) -> EncodecFrontend:
        """Always stays in eval mode: the pretrained parts are frozen."""
        return super().train(False)

    def _check(self) -> None:
        if not bool(self.weights_loaded):
            raise FileNotFoundError(
                f"the encodec front end needs the official weights {ENCODEC_WEIGHTS_NAME}: "
                f"not found at {self.weights_path} (set base_args.encodec_weights)"
            )

    def _patchify(self, wav: torch.Tensor) -> torch.Tensor:
        self._check()
        return self.encoder(wav)

    def _unpatchify(self, e: torch.Tensor) -> torch.Tensor:
        self._check()
        return self.decoder(e)
