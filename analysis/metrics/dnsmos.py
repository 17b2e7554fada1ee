"""DNSMOS P.835 (Microsoft's non-intrusive speech MOS: SIG, BAK, OVRL), from the `speechmos`
wheel, whose ONNX models ship inside it; run by onnxruntime on one thread.

Non-intrusive: it scores one clip without a reference, so the clean original gets its own
score (the ceiling) beside each codec's. Speech only; it expects 16 kHz in [-1, 1]. Clips
shorter than its 9 s input are tiled to one window (as the DNS challenge does); a clip
under `MIN_SECONDS`, or silent, is not scored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from analysis.metrics.align import as_mono
from analysis.metrics.scored import NotScored, is_silent

DNSMOS_RATE = 16000
MIN_SECONDS = 0.5
INPUT_SECONDS = 9.01  # DNSMOS's input window

_MODEL = None
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Dnsmos:
    """DNSMOS P.835 scores of one clip (1..5): speech signal, background, overall."""

    sig: float
    bak: float
    ovrl: float


def _model():
    global _MODEL
    if _MODEL is None:
        import onnxruntime as ort
        import speechmos.dnsmos as sm

        class _OneThread(sm.DNSMOS):
            def __init__(self, primary: str, p808: str) -> None:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = opts.inter_op_num_threads = 1
                self.primary_model_path = primary
                self.onnx_sess = ort.InferenceSession(primary, opts)
                self.p808_onnx_sess = ort.InferenceSession(p808, opts)

        root = Path(sm.__file__).parent / "dnsmos_models"
        _MODEL = _OneThread(str(root / "sig_bak_ovr.onnx"), str(root / "model_v8.onnx"))
    return _MODEL


def dnsmos(wav: torch.Tensor, sr: int) -> Dnsmos | NotScored:
    """DNSMOS of one clip (`[N]`, `[1, N]` or `[1, 1, N]` at `sr`)."""
    x = as_mono(wav)
    if x.numel() < MIN_SECONDS * sr:
        return NotScored(f"shorter than {MIN_SECONDS:g} s ({x.numel() / sr:.2f} s)")
    if not torch.isfinite(x).all():
        return NotScored("the clip holds NaN or inf")
    if is_silent(x):
        return NotScored("silent clip")
    x16 = AF.resample(x[None].double(), sr, DNSMOS_RATE)[0].clamp(-1.0, 1.0)
    need = int(INPUT_SECONDS * DNSMOS_RATE) + 1
    if x16.numel() < need:  # tile to one 9 s window (speechmos would tile to 2^k copies)
        x16 = x16.repeat(-(-need // x16.numel()))[:need]
    with _LOCK:
        out = _model()(x16.numpy().astype(np.float64), DNSMOS_RATE, False)
    return Dnsmos(float(out["sig_mos"]), float(out["bak_mos"]), float(out["ovrl_mos"]))
