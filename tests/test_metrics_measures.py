"""The field's measures (`analysis.metrics`): ViSQOL, DNSMOS, the neural F0 tracker, band
energy, and `score_pair`, on seeded synthetic signals whose answers are known."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from analysis.metrics import NotScored, score_pair
from analysis.metrics.bands import band_loss_db
from analysis.metrics.dnsmos import Dnsmos, dnsmos
from analysis.metrics.f0 import DEFAULT_TRACKER, clip_note_f0, compare_f0, track_f0
from analysis.metrics.visqol import visqol
from codec.audio import load_audio

SR = 24000
SPEECH = Path("data/demo/sound_files/speech_demo/akg/0001.wav")  # espeak-ng, in the demo set


def tone(hz: float, seconds: float = 1.5, sr: int = SR) -> torch.Tensor:
    """A harmonic tone (4 partials, 1/k amplitudes) with a short fade in and out."""
    t = torch.arange(int(seconds * sr)) / sr
    x = sum(torch.sin(2 * math.pi * hz * k * t) / k for k in range(1, 5))
    fade = torch.clamp(torch.minimum(t, t[-1] - t) / 0.02, max=1.0)
    return 0.2 * x * fade


def noisy(x: torch.Tensor, snr_db: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(x.shape, generator=g)
    return x + n * x.pow(2).mean().sqrt() / n.pow(2).mean().sqrt() * 10 ** (-snr_db / 20)


def test_visqol_ranks_identical_above_noisier() -> None:
    x = tone(220.0)
    same, mild, harsh = (visqol(x, y, SR) for y in (x, noisy(x, 30), noisy(x, 5)))
    assert isinstance(same, float) and same >= 4.5  # ViSQOL's ceiling is about 4.73
    assert isinstance(mild, float) and isinstance(harsh, float)
    assert same > mild > harsh


def test_visqol_short_and_silent_clips_are_not_scored() -> None:
    short = visqol(tone(220.0, 0.5), tone(220.0, 0.5), SR)
    assert isinstance(short, NotScored) and "minimum" in short.reason
    silent = visqol(torch.zeros(SR * 2), tone(220.0, 2.0), SR)
    assert isinstance(silent, NotScored) and "silent" in silent.reason


def test_dnsmos_hears_noise_in_speech_and_refuses_silence() -> None:
    speech = load_audio(SPEECH, SR, 30.0)
    clean, buried = dnsmos(speech, SR), dnsmos(noisy(speech, 0.0), SR)
    assert isinstance(clean, Dnsmos) and isinstance(buried, Dnsmos)
    assert all(0.0 < v < 5.0 for d in (clean, buried) for v in (d.sig, d.bak, d.ovrl))
    assert clean.bak > buried.bak + 0.5 and clean.ovrl > buried.ovrl
    assert isinstance(dnsmos(torch.zeros(SR * 2), SR), NotScored)
    assert isinstance(dnsmos(tone(180.0, 0.2), SR), NotScored)


@pytest.mark.parametrize("hz", [110.0, 440.0, 1000.0])
def test_tracker_finds_a_tones_pitch(hz: float) -> None:
    f = clip_note_f0(tone(hz), SR, DEFAULT_TRACKER)
    assert f.source == "tracker"
    assert abs(1200 * math.log2(f.hz / hz)) < 50


def test_pitch_kept_rmse_and_voicing() -> None:
    ref = track_f0(tone(220.0), SR)
    same = compare_f0(ref, track_f0(noisy(tone(220.0), 30), SR))
    fifth = compare_f0(ref, track_f0(tone(330.0), SR))
    assert same.pitch_kept is True and same.rmse_cents < 30 and same.voicing_agreement > 0.9
    assert fifth.pitch_kept is False and fifth.rmse_cents > 500  # a fifth is 702 cents


def test_note_above_the_trackers_range_falls_back_to_autocorrelation() -> None:
    f = clip_note_f0(tone(2350.0), SR, expected_hz=2349.3)  # D7 on a piccolo: above B7
    assert f.source == "autocorrelation"
    assert abs(1200 * math.log2(f.hz / 2349.3)) < 50


def test_band_loss_sees_a_lowpass() -> None:
    x = noisy(tone(220.0), 10)
    spec = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(x.numel(), 1 / SR)
    low = torch.fft.irfft(spec * (freqs < 3000), x.numel())
    d = band_loss_db(x, low, SR)
    assert isinstance(d, dict)
    assert abs(d["<1k"]) < 1.0 and d["4-12k"] < -20.0
    same = band_loss_db(x, x, SR)
    assert isinstance(same, dict) and all(abs(v) < 1e-6 for v in same.values())


def test_score_pair_fills_what_applies_and_says_why_not() -> None:
    x = tone(220.0)
    s = score_pair(x, noisy(x, 25), SR, speech=False)
    assert s.values["pitch_kept"] == 1.0 and s.values["si_sdr"] > 20
    assert 1.0 <= s.values["visqol"] <= 5.0
    assert math.isnan(s.values["dnsmos_ovrl"]) and s.not_scored["dnsmos_ovrl"] == "not speech"
    sp = score_pair(x, x, SR, speech=True, use_visqol=False)
    assert 1.0 <= sp.values["dnsmos_ovrl"] <= 5.0 and "budget" in sp.not_scored["visqol"]
    assert "pitch_kept" in sp.not_scored
    bad = score_pair(x, torch.full_like(x, math.nan), SR)
    assert all(math.isnan(v) for v in bad.values.values()) and "NaN" in bad.reasons()
    with pytest.raises(ValueError, match="empty"):
        score_pair(torch.zeros(0), x, SR)
