"""Codec2 as a reference codec: an 8 kHz speech codec (modes 700C, 1200 and 3200 bit/s),
resampled from and back to the project's 24 kHz.

    x [N] (24 kHz) --resample--> 8 kHz --int16, + delay zeros--> Codec2 frames (20 or 40 ms)
        --bits--> Codec2 decoder --drop the delay--> 8 kHz --resample--> y [N] (24 kHz)

Codec2 is a parametric (sinusoidal) vocoder for speech at 8 kHz: nothing above 4 kHz survives
(its output at 24 kHz has no energy there), music and noise come out as buzzy speech-like
sound, and the waveform's phase is synthesised, so sample-level measures (SI-SDR) are low even
where it sounds intelligible. The decoded stream lags the input by about 30 ms in mode 700C and
20 ms in 1200 and 3200 (measured on the demo set's speech by envelope cross-correlation,
rounded to Codec2's 10 ms steps); that delay is removed, so outputs line up with inputs to a
few milliseconds and have the input's length.

The bitrate is fixed per mode: `reconstruct_measured` counts bits per frame x frames coded
(the frames padding the clip's end included). The bindings (`pycodec2`) carry libcodec2.
"""

from __future__ import annotations

import logging
from functools import cache
from types import ModuleType

import numpy as np
import torch
import torchaudio.functional as AF

from codec.models.reference import ReferenceCodec, aligned, frames_of, to_int16

log = logging.getLogger(__name__)

CODEC2_RATE = 8000
MODES = {0.7: 700, 1.2: 1200, 3.2: 3200}  # kbps -> pycodec2's mode number (700 is 700C)
DELAY_8K = {700: 240, 1200: 160, 3200: 160}  # decoded stream's lag, samples at 8 kHz
FRAME_SECONDS = {700: 0.04, 1200: 0.04, 3200: 0.02}
# a steep resampling filter, so nothing of the 4 kHz band edge leaks above it at 24 kHz
RESAMPLE = {"lowpass_filter_width": 16, "rolloff": 0.95}


@cache
def _codec2() -> ModuleType:
    """The bindings, imported on first use (importing this module never loads the library)."""
    import pycodec2

    return pycodec2


def resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """`x` `[N]` float32 from `orig` Hz to `new` Hz (torchaudio's windowed sinc)."""
    return AF.resample(torch.from_numpy(x), orig, new, **RESAMPLE).numpy()


class Codec2Codec(ReferenceCodec):
    """Codec2, an 8 kHz speech codec, at 700C / 1200 / 3200 bit/s; resampled 24 kHz -> 8 kHz
    on the way in and 8 kHz -> 24 kHz on the way out. The setting is the mode's bitrate in
    kbps (0.7, 1.2, 3.2), also accepted by name ("700C", "1200", "3200")."""

    name = "codec2"
    label = "Codec2 (8 kHz speech codec)"
    choices = (0.7, 1.2, 3.2)
    names = ("700C", "1200", "3200")
    default_kbps = 1.2

    @classmethod
    def library(cls) -> str:
        from importlib.metadata import version

        return f"libcodec2 (pycodec2 {version('pycodec2')}), 8 kHz inside"

    def frame_seconds(self, kbps: float) -> float:
        return FRAME_SECONDS[MODES[kbps]]

    def transcode(self, x: np.ndarray, kbps: float) -> tuple[np.ndarray, int]:
        """One clip at 24 kHz through Codec2 at 8 kHz: (decoded `[N]` at 24 kHz, bits)."""
        mode = MODES[kbps]
        coder = _codec2().Codec2(mode)
        frame, delay = coder.samples_per_frame(), DELAY_8K[mode]
        x8 = resample(x, self.sample_rate, CODEC2_RATE)
        padded, count = frames_of(to_int16(x8), frame, delay)
        decoded = np.empty(count * frame, np.int16)
        for i in range(count):
            payload = coder.encode(padded[i * frame : (i + 1) * frame].copy())
            decoded[i * frame : (i + 1) * frame] = coder.decode(payload)
        y8 = aligned(decoded.astype(np.float32) / 32768.0, delay, x8.shape[0])
        y = resample(y8, CODEC2_RATE, self.sample_rate)
        return aligned(y, 0, x.shape[0]), count * coder.bits_per_frame()
