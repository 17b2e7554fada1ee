"""Opus (libopus) as a reference codec: 24 kHz mono, 20 ms frames, 6 or 12 kbps.

    x [N] (24 kHz) + lookahead zeros --20 ms frames--> encoder (application "audio", VBR,
        complexity 10) --packets--> decoder --> drop the first `lookahead` samples --> y [N]

The encoder's lookahead (6.5 ms = 156 samples at 24 kHz: 2.5 ms of look-ahead plus the
delay compensation of its resampler-free path) delays the decoded stream by exactly that many
samples; appending as many zeros and dropping the first ones aligns the output with the input
sample for sample. Every clip gets a fresh encoder and decoder, so results never depend on
what went before.

The bitrate is a VBR target: `reconstruct_measured` counts the bytes of the packets produced
(bits of all packets / seconds of audio), which on tonal or quiet audio is below the target.
The bindings (`opuslib-next-bundled`) carry their own libopus.
"""

from __future__ import annotations

import logging
from functools import cache
from types import ModuleType

import numpy as np

from codec.models.reference import ReferenceCodec, aligned, frames_of

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.02  # 20 ms packets
APPLICATION = "audio"  # general audio (music and speech), not "voip"


@cache
def _opus() -> ModuleType:
    """The bindings, imported on first use (importing this module never loads the library)."""
    import opuslib_next

    return opuslib_next


class OpusCodec(ReferenceCodec):
    """Opus at 24 kHz mono, 20 ms frames; the setting is the target bitrate in kbps."""

    name = "opus"
    label = "Opus (libopus)"
    choices = (6.0, 12.0)
    default_kbps = 6.0

    @classmethod
    def library(cls) -> str:
        from importlib.metadata import version

        from opuslib_next.api.info import get_version_string

        built = get_version_string().decode().replace(" unknown", "")  # "libopus 1.5.2"
        return f"{built} (opuslib-next-bundled {version('opuslib-next-bundled')})"

    def frame_seconds(self, kbps: float) -> float:
        return FRAME_SECONDS

    def transcode(self, x: np.ndarray, kbps: float) -> tuple[np.ndarray, int]:
        """One clip through a fresh encoder/decoder pair: (decoded `[N]`, bits of packets)."""
        opus = _opus()
        sr, frame = self.sample_rate, round(FRAME_SECONDS * self.sample_rate)
        encoder = opus.Encoder(sr, 1, APPLICATION)
        encoder.bitrate = round(kbps * 1000)
        encoder.complexity = 10
        decoder = opus.Decoder(sr, 1)
        delay = int(encoder.lookahead)
        padded, count = frames_of(np.clip(x, -1.0, 1.0).astype(np.float32), frame, delay)
        decoded = np.empty(count * frame, np.float32)
        bits = 0
        for i in range(count):
            packet = encoder.encode_float(padded[i * frame : (i + 1) * frame].tobytes(), frame)
            bits += 8 * len(packet)
            pcm = np.frombuffer(decoder.decode_float(packet, frame), np.float32)
            decoded[i * frame : (i + 1) * frame] = pcm
        return aligned(decoded, delay, x.shape[0]), bits
