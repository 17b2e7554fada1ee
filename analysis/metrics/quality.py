"""Waveform quality of a reconstruction after delay alignment: mel distance and SI-SDR (the
numbers training logs, from `codec.metrics`), STOI (pystoi), and wide-band PESQ (16 kHz) for
speech only.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass

import torch
import torchaudio.functional as AF

from analysis.metrics.align import align_delay, as_mono
from codec.metrics import mel_distance, si_sdr
from codec.models.base import SAMPLE_RATE

log = logging.getLogger(__name__)

PESQ_RATE = 16000


@dataclass
class QualityMetrics:
    """Quality of one reconstruction (higher is better except mel_distance).

    Attributes:
        mel_distance: multi-scale log-mel L1 (codec.metrics.mel_distance).
        si_sdr: scale-invariant SDR in dB.
        stoi: short-time objective intelligibility in [0, 1].
        pesq: wide-band PESQ (MOS-LQO), NaN unless computed for speech.
        lag: alignment lag in samples.
    """

    mel_distance: float
    si_sdr: float
    stoi: float
    pesq: float
    lag: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def stoi_score(estimate: torch.Tensor, reference: torch.Tensor, sr: int) -> float:
    """STOI via pystoi (NaN when it cannot be computed, e.g. a clip under ~0.4 s)."""
    from pystoi import stoi

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(stoi(reference.numpy(), estimate.numpy(), sr, extended=False))
    except (ValueError, RuntimeError) as e:
        log.debug("STOI failed: %s", e)
        return math.nan


def pesq_score(estimate: torch.Tensor, reference: torch.Tensor, sr: int) -> float:
    """Wide-band PESQ at 16 kHz (NaN when pesq finds no utterance or the clip is too short)."""
    from pesq import PesqError, pesq

    if float(reference.abs().max()) < 1e-6 or float(estimate.abs().max()) < 1e-6:
        return math.nan  # silence: PESQ is undefined
    ref = AF.resample(reference[None], sr, PESQ_RATE)[0].numpy()
    est = AF.resample(estimate[None], sr, PESQ_RATE)[0].numpy()
    try:
        return float(pesq(PESQ_RATE, ref, est, "wb"))
    except (PesqError, ValueError, RuntimeError) as e:
        log.debug("PESQ failed: %s", e)
        return math.nan


def quality_metrics(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    sr: int = SAMPLE_RATE,
    speech: bool = False,
    align: bool = True,
    max_lag_ms: float = 50.0,
) -> QualityMetrics:
    """Mel distance, SI-SDR, STOI (and PESQ when `speech`) of `estimate` against `reference`
    (`[N]`, `[1, N]` or `[1, 1, N]`), after delay alignment."""
    if align:
        al = align_delay(estimate, reference, sr, max_lag_ms)
        est, ref, lag = al.estimate, al.reference, al.lag
    else:
        est, ref = as_mono(estimate), as_mono(reference)
        m = min(est.numel(), ref.numel())
        est, ref, lag = est[:m], ref[:m], 0
    if est.numel() == 0:
        raise ValueError("empty signals: nothing to compare")
    est24 = est if sr == SAMPLE_RATE else AF.resample(est[None], sr, SAMPLE_RATE)[0]
    ref24 = ref if sr == SAMPLE_RATE else AF.resample(ref[None], sr, SAMPLE_RATE)[0]
    return QualityMetrics(
        mel_distance=float(mel_distance(est24, ref24)),
        si_sdr=float(si_sdr(est, ref)),
        stoi=stoi_score(est, ref, sr),
        pesq=pesq_score(est, ref, sr) if speech else math.nan,
        lag=lag,
    )
