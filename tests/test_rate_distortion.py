"""bench.rate_distortion: the frame error and bit counts it reports, on tiny models."""

from __future__ import annotations

import math

import torch

from bench import rate_distortion as rd
from tests.tiny_models import tiny_alm, tiny_encodec


def test_relative_error_is_zero_for_a_copy_and_one_for_the_channel_means() -> None:
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(3, 4, 50, generator=g) * torch.tensor([1.0, 5.0, 0.1, 2.0])[:, None]
    assert rd.relative_error(frames, frames) == 0.0
    means = frames.mean((0, 2), keepdim=True).expand_as(frames)
    assert abs(rd.relative_error(frames, means) - 1.0) < 1e-5
    noisy = frames + 0.5 * frames.std((0, 2), keepdim=True) * torch.randn(3, 4, 50, generator=g)
    assert 0.15 < rd.relative_error(frames, noisy) < 0.35  # 0.25 expected, per channel alike


def test_power_law_recovers_its_exponent() -> None:
    rows = [rd.Row("encodec", str(b), b, 30.0 * b**-0.5) for b in (1500.0, 3000.0, 6000.0)]
    a, b = rd.power_law(rows)
    assert abs(b + 0.5) < 1e-9 and abs(a - 30.0) < 1e-6


def test_rows_count_the_bits_of_the_codes_and_report_an_error() -> None:
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(2, 1, 4800)
    alm, enc = tiny_alm(), tiny_encodec()
    (a3,) = rd.alm_rows(alm, wav, [3])
    n_q, k = alm.num_codebooks, alm.codebook_size
    assert math.isclose(a3.bits_per_second, n_q * math.log2(k) * alm.frame_rate(3))
    assert 0.0 < a3.frame_error < 10.0
    e = rd.encodec_rows(enc, wav, [1.5, 3.0])
    assert e[0].bits_per_second < e[1].bits_per_second
    assert e[1].frame_error <= e[0].frame_error + 1e-6  # more codebooks never code worse
    assert not rd.same_encoder(alm, enc, wav)  # two random encoders
    text = rd.report(e + [a3], shared=False)
    assert "NO" in text and "| almtokenizer | w=3 |" in text


def test_encodec_rows_follow_the_checkpoints_bandwidths() -> None:
    """A checkpoint whose config lists 0.75 kbps gets a one-codebook row at 750 bit/s; the
    default sweep is its own bandwidths up to 6 kbps."""
    from analysis.codec_ops import bandwidths_for
    from codec.models.encodec import EnCodecCodec
    from tests.tiny_models import TINY_ENCODEC

    torch.manual_seed(0)
    four = [0.75, 1.5, 3.0, 6.0]
    enc = EnCodecCodec({**TINY_ENCODEC, "n_q": 8, "target_bandwidths": four,
                        "train_bandwidths": four}).eval()  # fmt: skip
    assert bandwidths_for(enc) == four and bandwidths_for(tiny_encodec()) == [1.5, 3.0]
    rows = rd.encodec_rows(enc, 0.1 * torch.randn(1, 1, 4800), bandwidths_for(enc))
    assert [(r.setting, r.bits_per_second) for r in rows] == [
        ("0.75 kbps", 750.0), ("1.5 kbps", 1500.0), ("3 kbps", 3000.0), ("6 kbps", 6000.0),
    ]  # fmt: skip
