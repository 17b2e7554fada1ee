"""Quality metrics against references on synthetic signals; rates from the codec."""

from __future__ import annotations

import math

import pytest
import torch

from analysis.metrics import align_delay, codec_rates, quality_metrics
from codec.metrics import si_sdr
from tests.tiny_models import tiny_alm, tiny_encodec

SR = 24000
torch.set_num_threads(1)


def _noise(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


def _speechlike(seconds: float = 2.0, seed: int = 0) -> torch.Tensor:
    """A gliding harmonic complex with a syllable-rate envelope (PESQ detects it as speech)."""
    t = torch.arange(int(seconds * SR)) / SR
    env = (0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t)).clamp(min=0) ** 2
    phase = 2 * math.pi * torch.cumsum(140 + 20 * torch.sin(2 * math.pi * 0.7 * t), 0) / SR
    x = sum(torch.sin(k * phase) / k for k in range(1, 20)) * env * 0.2
    return x + 0.002 * _noise(t.numel(), seed)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_si_sdr_of_signal_plus_noise_at_known_snr(snr_db: float) -> None:
    s = _noise(SR, 0)
    s = s - s.mean()
    n = _noise(SR, 1)
    n = n - n.mean()
    n = n - (n @ s) / (s @ s) * s  # orthogonal to s: SI-SDR is then exactly the SNR
    n = n * (s.norm() / n.norm()) / 10 ** (snr_db / 20)
    assert float(si_sdr(s + n, s)) == pytest.approx(snr_db, abs=1e-2)
    m = quality_metrics(s + n, s)
    assert m.lag == 0 and m.si_sdr == pytest.approx(snr_db, abs=1e-2)
    # scale invariance
    assert quality_metrics(3.0 * (s + n), s).si_sdr == pytest.approx(snr_db, abs=1e-2)


@pytest.mark.parametrize("shift", [0, 37, -53, 1199])
def test_delay_alignment_recovers_a_known_shift(shift: int) -> None:
    ref = _noise(SR // 2, 2)
    est = torch.roll(ref, shift)
    al = align_delay(est, ref)
    assert al.lag == shift
    assert al.estimate.shape == al.reference.shape == (ref.numel() - abs(shift),)
    torch.testing.assert_close(al.estimate, al.reference)
    m = quality_metrics(est, ref)
    assert m.lag == shift and m.si_sdr > 60 and m.mel_distance < 1e-3
    unaligned = quality_metrics(est, ref, align=False)
    if shift:
        assert unaligned.si_sdr < 0


def test_shift_beyond_50ms_is_not_searched() -> None:
    ref = _noise(SR // 2, 3)
    est = torch.cat([torch.zeros(1300), ref])  # 54 ms
    assert abs(align_delay(est, ref).lag) <= 1200
    assert align_delay(est, ref, max_ms=60).lag == 1300


def test_stoi_and_pesq() -> None:
    x = _speechlike()
    clean = quality_metrics(x, x, speech=True)
    assert clean.stoi == pytest.approx(1.0, abs=1e-6)
    assert clean.pesq > 4.5 and clean.mel_distance == pytest.approx(0.0, abs=1e-6)
    noisy = quality_metrics(x + 0.05 * _noise(x.numel(), 9), x, speech=True)
    assert noisy.pesq < clean.pesq - 1.0 and noisy.stoi < clean.stoi
    assert math.isnan(quality_metrics(x, x, speech=False).pesq)
    assert math.isnan(quality_metrics(torch.zeros(SR), torch.zeros(SR), speech=True).pesq)


def test_rates_come_from_the_codec() -> None:
    alm, enc = tiny_alm(), tiny_encodec()
    frames = 24000 / alm.frontend.hop_length  # 75 Hz: the EnCodec front end's frame rate
    assert frames == pytest.approx(75.0)
    for w in (2, 5, 10):
        r = codec_rates(alm, w)
        assert r.tokens_per_second == pytest.approx(frames / w)
        assert r.bitrate == pytest.approx(frames / w * 2 * 4)  # 2 codebooks x log2(16) bits
        assert r.codes_per_second == pytest.approx(2 * frames / w)
    r = codec_rates(enc, 7)
    assert r.window == 7 and r.tokens_per_second == 75 and r.bitrate == pytest.approx(1500)
    enc.set_bandwidth(3.0)
    assert codec_rates(enc).bitrate == pytest.approx(3000) and codec_rates(enc).num_codebooks == 4
