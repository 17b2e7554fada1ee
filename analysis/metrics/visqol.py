"""ViSQOL v3 in audio mode (48 kHz), the field's codec measure (audiocraft's compression solver,
the EnCodec, SoundStream and DAC papers report it), from the `visqol-python` wheel, whose
audio-mode SVR model ships inside it.

MOS-LQO on 1..5; identical audio scores about 4.73. Both signals are resampled to 48 kHz, as
ViSQOL's audio mode expects. A clip shorter than its minimum patch (about 1 s), or a silent
reference, is not scored: `visqol` returns a `NotScored` reason instead of a number.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
import torch
import torchaudio.functional as AF

from analysis.metrics.align import as_mono
from analysis.metrics.scored import NotScored, is_silent

log = logging.getLogger(__name__)

VISQOL_RATE = 48000
# ViSQOL needs 45 spectral frames (hop 1024 at 48 kHz) in the reference: just under 1 s
MIN_SECONDS = 1.0

_API = None
_LOCK = threading.Lock()


def _api():
    global _API
    if _API is None:
        from visqol import VisqolApi

        api = VisqolApi()
        api.create(mode="audio")
        _API = api
    return _API


def visqol(reference: torch.Tensor, estimate: torch.Tensor, sr: int) -> float | NotScored:
    """ViSQOL audio-mode MOS-LQO of `estimate` against `reference` (`[N]`, `[1, N]` or
    `[1, 1, N]` at `sr`); both should already be delay-aligned and of equal length."""
    ref, est = as_mono(reference), as_mono(estimate)
    n = min(ref.numel(), est.numel())
    if n < MIN_SECONDS * sr:
        return NotScored(f"shorter than ViSQOL's minimum ({n / sr:.2f} s < {MIN_SECONDS:g} s)")
    if is_silent(ref[:n]):
        return NotScored("silent reference")
    ref48 = AF.resample(ref[:n][None].double(), sr, VISQOL_RATE)[0].numpy()
    est48 = AF.resample(est[:n][None].double(), sr, VISQOL_RATE)[0].numpy()
    if not np.isfinite(est48).all():
        return NotScored("the decoded clip holds NaN or inf")
    with _LOCK:  # the API object keeps state per call: one measurement at a time
        try:
            score = float(_api().measure_from_arrays(ref48, est48, VISQOL_RATE).moslqo)
        except ValueError as e:
            return NotScored(f"ViSQOL refused the clip: {e}")
    if not math.isfinite(score):
        return NotScored("ViSQOL returned no score (silent or degenerate decoded clip)")
    return score
