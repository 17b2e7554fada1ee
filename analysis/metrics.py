"""Reconstruction quality metrics after delay alignment, and codec rates.

Mel distance and SI-SDR come from `codec.metrics` (the same numbers training logs); STOI from
pystoi; PESQ (wide-band, 16 kHz) from pesq, for speech only. Before any metric the estimate is
aligned to the reference by the lag (within +-50 ms) that maximises their cross-correlation,
so a codec's constant delay is not scored as distortion.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass

import torch
import torchaudio.functional as AF

from codec.metrics import mel_distance, si_sdr
from codec.models.base import SAMPLE_RATE, Codec

log = logging.getLogger(__name__)

PESQ_RATE = 16000


@dataclass
class Alignment:
    """Delay alignment result.

    Attributes:
        lag: samples by which the estimate lags the reference (positive: estimate is late).
        estimate, reference: the overlapping parts after the shift, both `[M]`.
    """

    lag: int
    estimate: torch.Tensor
    reference: torch.Tensor


def _mono(x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).detach().float().cpu().reshape(-1)


def align_delay(
    estimate: torch.Tensor, reference: torch.Tensor, sr: int = SAMPLE_RATE, max_ms: float = 50.0
) -> Alignment:
    """Find the lag in [-max_ms, +max_ms] maximising the cross-correlation and crop both
    signals (`[N]`, `[1, N]` or `[1, 1, N]`) to their overlap."""
    est, ref = _mono(estimate), _mono(reference)
    max_lag = int(round(max_ms * sr / 1000.0))
    nfft = 1 << int(math.ceil(math.log2(max(est.numel() + ref.numel(), 2))))
    spec = torch.fft.rfft(est.double(), nfft) * torch.fft.rfft(ref.double(), nfft).conj()
    cc = torch.fft.irfft(spec, nfft)  # cc[k] = sum_n est[n + k] ref[n]; negatives wrap around
    lags = torch.arange(-max_lag, max_lag + 1)
    lags = lags[(lags < est.numel()) & (-lags < ref.numel())]
    lag = int(lags[int(cc[lags % nfft].argmax())])
    if lag >= 0:
        est, ref = est[lag:], ref
    else:
        est, ref = est, ref[-lag:]
    m = min(est.numel(), ref.numel())
    return Alignment(lag, est[:m], ref[:m])


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
        est, ref = _mono(estimate), _mono(reference)
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
