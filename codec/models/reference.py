"""Reference codecs: classical codecs a user would pick instead of a neural one (Opus, Codec2),
as `Codec` backends that reconstruct audio and have no latents.

    wav [B, 1, N] (24 kHz float) --per clip--> transcode (numpy, the codec's own library)
        --> wav [B, 1, N] + the bits of the payload it produced

They answer the same questions the app and the analysis ask of every codec (`setting`,
`bitrate`, `reconstruct`, `reconstruct_measured`), and refuse what needs latents (`encode`,
`decode`, `codes_to_latents`, `quantize`) with `NoLatentsError`, which names why. Their one
setting is the bitrate, a stateful "bandwidth" choice in kbps like EnCodec's (applied under the
model's setting lock by `Codec.use_setting`). They have no weights: the registry builds them
(`Backend.build`), nothing loads or saves them, nothing trains them.

A subclass sets `name`, `label`, `choices` (kbps), `default_kbps`, optionally `names` and
`frame_seconds(kbps)`, and implements `transcode(x, kbps) -> (y, bits)` on one mono clip.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from codec.checkpoint import CheckpointError
from codec.models.base import Codec, CodecSetting, Encoded, NoLatentsError, Reconstruction
from codec.schema import ConfigError

log = logging.getLogger(__name__)


class ReferenceCodec(Codec):
    """A classical codec behind the `Codec` interface: reconstructs, has no latents.

    Attributes:
        label: what pages and tables call it ("Codec2 (8 kHz speech codec)").
        choices: the bitrates it offers, kbps.
        names: the choices' names when they have some (Codec2's modes), else empty.
        kbps: the bitrate in use (change with `apply_setting` / `Codec.use_setting`).
    """

    has_latents = False
    label: ClassVar[str] = "reference codec"
    choices: ClassVar[tuple[float, ...]] = ()
    names: ClassVar[tuple[str, ...]] = ()
    default_kbps: ClassVar[float] = 0.0

    def __init__(self, kbps: float | None = None) -> None:
        super().__init__()
        self.kbps = self._check(self.default_kbps if kbps is None else kbps)
        self.weights_source = f"built in: {self.library()} (no weights)"

    # --- what subclasses provide -----------------------------------------------------------
    @abstractmethod
    def transcode(self, x: np.ndarray, kbps: float) -> tuple[np.ndarray, int]:
        """One mono clip `x` `[N]` (float32, 24 kHz, N >= 1) through the codec at `kbps`:
        the decoded clip `[N]` (float32, aligned with `x`) and the bits of its payload."""

    @classmethod
    def library(cls) -> str:
        """The library and its version, for pages ("libopus 1.5.2")."""
        return cls.name

    def frame_seconds(self, kbps: float) -> float:
        """Seconds of audio per packet (frame) at `kbps`."""
        return 0.02

    # --- the setting -----------------------------------------------------------------------
    def _check(self, kbps: Any) -> float:
        value = CodecSetting("bandwidth", self.choices, None, self.names).check(kbps)
        assert value is not None
        return float(value)

    def setting(self) -> CodecSetting:
        """The bitrate in kbps (the default is the one in use)."""
        return CodecSetting("bandwidth", self.choices, self.kbps, self.names)

    def apply_setting(self, value: float) -> float:
        """Use `value` kbps from now on; returns the previous bitrate."""
        before, self.kbps = self.kbps, self._check(value)
        return before

    # --- description -----------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        """0: no latents."""
        return 0

    @property
    def num_codebooks(self) -> int:
        """1: one packet per frame stands for the codes."""
        return 1

    @property
    def codebook_size(self) -> int:
        """2 ** (nominal bits per packet), so frame_rate x n_q x log2(K) is the bitrate."""
        return 2 ** round(self.bitrate() * self.frame_seconds(self.kbps))

    def frame_rate(self, window: int | None = None) -> float:
        """Packets (frames) per second at the bitrate in use; the window is ignored."""
        return 1.0 / self.frame_seconds(self.kbps)

    def bitrate(self, window: int | None = None) -> float:
        """The nominal bitrate in use, bits per second (`reconstruct_measured` counts the
        bits actually produced)."""
        return self.kbps * 1000.0

    # --- inference -------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, wav: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """`wav` `[B, 1, N]` (24 kHz) through the codec at the bitrate in use: `[B, 1, N]`,
        aligned with the input (the codec's delay removed)."""
        return self.reconstruct_measured(wav, window).wav

    @torch.no_grad()
    def reconstruct_measured(self, wav: torch.Tensor, window: int | None = None) -> Reconstruction:
        """`reconstruct` plus the bits of every packet produced (the measured bitrate is
        bits / seconds of input audio). An empty input gives an empty output and the nominal
        bitrate."""
        if not isinstance(wav, torch.Tensor) or wav.dim() != 3 or wav.shape[1] != 1:
            shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
            raise ValueError(f"{self.label} expects a mono waveform [B, 1, N], got {shape}")
        batch, n = wav.shape[0], wav.shape[-1]
        kbps, nominal = self.kbps, self.bitrate()
        if n == 0 or batch == 0:
            return Reconstruction(torch.zeros_like(wav, dtype=torch.float32), None, 0.0, nominal)
        x = wav.detach().to("cpu", torch.float32).numpy()
        out = np.empty((batch, 1, n), np.float32)
        bits = 0
        for b in range(batch):
            y, nbits = self.transcode(np.ascontiguousarray(x[b, 0]), kbps)
            out[b, 0] = y
            bits += nbits
        rec = torch.from_numpy(out).to(wav.device)
        return Reconstruction(rec, float(bits), batch * n / self.sample_rate, nominal)

    def _no_latents(self, what: str) -> NoLatentsError:
        return NoLatentsError(
            f"{self.label} is a reference codec: it reconstructs audio (reconstruct) but has "
            f"no latents or codes, so it cannot {what}"
        )

    def encode(self, wav: torch.Tensor, window: int | None = None) -> Encoded:
        """Refused: no latents (`NoLatentsError`)."""
        raise self._no_latents("encode to latents")

    def decode(
        self, latents: torch.Tensor, window: int | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        """Refused: no latents (`NoLatentsError`)."""
        raise self._no_latents("decode latents")

    def codes_to_latents(self, codes: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Refused: no codes (`NoLatentsError`)."""
        raise self._no_latents("look codes up")

    def quantize(self, latents: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Refused: no latents (`NoLatentsError`)."""
        raise self._no_latents("quantize latents")

    # --- serialisation: nothing to save ----------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {"kbps": self.kbps}

    def latent_config_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ReferenceCodec:
        unknown = set(config) - {"kbps"}
        if unknown:
            raise ConfigError(f"{cls.name}: unknown config keys {sorted(unknown)}")
        return cls(config.get("kbps"))

    def save_pretrained(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        raise CheckpointError(f"{self.label} has no weights to save: it is built in")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Codec:
        raise CheckpointError(f"{cls.label} has no weights to load: build it with {cls.__name__}()")

    @classmethod
    def check_training(
        cls, config: dict[str, Any], stage: int, stage1_checkpoint: str | None
    ) -> None:
        raise ConfigError(f"type: {cls.name} is a reference codec with nothing to train")


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16 PCM (clipped)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def frames_of(x: np.ndarray, size: int, delay: int) -> tuple[np.ndarray, int]:
    """`x` `[N]` with `delay` zeros appended (so the codec flushes the end of the clip) and
    zero-padded to whole frames of `size`: (`[F * size]`, F)."""
    n = x.shape[0] + delay
    count = max(1, math.ceil(n / size))
    padded = np.zeros(count * size, x.dtype)
    padded[: x.shape[0]] = x
    return padded, count


def aligned(y: np.ndarray, delay: int, n: int) -> np.ndarray:
    """The decoded stream `y` with the codec's `delay` removed, exactly `n` samples."""
    out = np.zeros(n, np.float32)
    part = y[delay : delay + n]
    out[: part.shape[0]] = part
    return out
