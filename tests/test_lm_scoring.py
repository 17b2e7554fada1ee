"""Bits per token and per second: the arithmetic on hand-computed cases, the baselines as proper
distributions, and the report's table and JSON."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.lm.baselines import BigramBaseline, RepeatLastBaseline, UnigramBaseline
from codec.lm.data import Clip, ShardData
from codec.lm.record import TokenizerRecord
from codec.lm.scoring import (
    BitsResult,
    LMReport,
    baseline_results,
    bits_per_second,
    share_removed,
)


def test_bits_per_second_arithmetic_by_hand():
    # 2 codebooks at 2 and 3 bits per token, 25 frames per second: (2 + 3) * 25 = 125 bit/s
    assert bits_per_second([2.0, 3.0], 25.0) == 125.0
    # raw: n_q * log2(K) * rate = 2 * 10 * 25 = 500 bit/s; 125 of them kept: 75 % removed
    rec = TokenizerRecord("encodec", "h", None, 1.5, 2, 1024, 25.0)
    assert rec.raw_bitrate == 500.0
    assert share_removed(125.0, rec.raw_bitrate) == 0.75
    r = BitsResult("lm", [2.0, 3.0], [10, 10], 25.0)
    assert r.mean_bits_per_token == 2.5 and r.bits_per_second == 125.0
    assert r.to_dict(500.0)["share_of_raw_removed"] == 0.75
    # EnCodec 1.5 kbps: 2 codebooks of 1024 at 75 Hz is exactly 1500 bit/s raw
    assert TokenizerRecord("encodec", "h", None, 1.5, 2, 1024, 75.0).raw_bitrate == 1500.0


def test_unigram_add_one_by_hand():
    # codebook 0 trains on 0 0 0 1 with K = 4: add-one counts 4 2 1 1 of 8
    train = [np.array([[0, 0, 0, 1]])]
    uni = UnigramBaseline(1, 4).fit(train)
    np.testing.assert_allclose(uni.probs()[0], [0.5, 0.25, 0.125, 0.125])
    bits = uni.bits(np.array([[0, 1, 3]]))  # 1 + 2 + 3 bits
    np.testing.assert_allclose(bits, [[1.0, 2.0, 3.0]])


def test_repeat_last_by_hand():
    # 0 0 0 1: 2 repeats of 3 transitions -> r = (2 + 1) / (3 + 2) = 0.6
    rep = RepeatLastBaseline(1, 4).fit([np.array([[0, 0, 0, 1]])])
    assert rep.repeat_rate()[0] == pytest.approx(0.6)
    bits = rep.bits(np.array([[1, 1, 0]]))
    # first frame: unigram P(1) = 0.25; a repeat: 0.6; 1 -> 0: 0.4 * 0.5 / (1 - 0.25)
    expected = -np.log2([0.25, 0.6, 0.4 * 0.5 / 0.75])
    np.testing.assert_allclose(bits[0], expected)


@pytest.mark.parametrize("cls", [UnigramBaseline, RepeatLastBaseline, BigramBaseline])
def test_baselines_are_distributions(cls):
    """For any previous code, the probabilities of the K next codes sum to 1."""
    rng = np.random.default_rng(0)
    k = 8
    base = cls(2, k).fit([rng.integers(0, k, (2, 50)), rng.integers(0, 3, (2, 20))])
    for prev in range(k):
        total = np.zeros(2)
        for nxt in range(k):
            codes = np.array([[prev, nxt], [prev, nxt]])
            total += 2.0 ** -base.bits(codes)[:, 1]
        np.testing.assert_allclose(total, 1.0, rtol=1e-9)


def test_bigram_learns_a_deterministic_successor():
    cycle = np.array([[0, 1, 2, 3] * 25])
    base = BigramBaseline(1, 4).fit([cycle])
    # Witten-Bell: 1 seen successor of 25 -> P = (25 + 1 * u) / 26 for the right next code
    bits = base.bits(np.array([[0, 1, 2, 3]]))[0, 1:]
    assert (bits < 0.1).all()


def _clip(codes) -> Clip:
    return Clip("c", "c", "f", torch.as_tensor(np.asarray(codes)).to(torch.int16))


def test_report_table_and_json():
    rec = TokenizerRecord("almtokenizer", "abc", 3, None, 2, 4, 25.0)
    train = [_clip([[0, 0, 0, 1], [2, 2, 2, 2]])]
    held = [_clip([[0, 1], [2, 3]])]
    data = ShardData(rec, train, held, [])
    base = baseline_results(data)
    assert [b.name for b in base] == ["unigram (add-one)", "repeat-last", "bigram (Witten-Bell)"]
    uni = base[0]
    # codebook 0: P(0) = 4/8, P(1) = 2/8 -> (1 + 2) / 2; codebook 1: P(2) = 5/8, P(3) = 1/8
    assert uni.bits_per_token[0] == pytest.approx(1.5)
    assert uni.bits_per_token[1] == pytest.approx((math.log2(8 / 5) + 3) / 2)
    lm = BitsResult("lm (delay)", [0.5, 0.5], [2, 2], 25.0)
    report = LMReport(rec, lm, base, 1, 1, 0.08, 100)
    table = report.format_table()
    assert "lm (delay)" in table and "bit/s" in table and "raw 100.0 bit/s" in table
    d = report.to_dict()
    assert d["lm"]["bits_per_second"] == 25.0 and d["raw_bits_per_second"] == 100.0
    assert d["lm"]["share_of_raw_removed"] == 0.75
    assert d["best_baseline"] == min(base, key=lambda b: b.bits_per_second).name
