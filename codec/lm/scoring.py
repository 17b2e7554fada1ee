"""Held-out bits of the LM and of its count-based baselines, in the field's units.

- bits per token: the mean of -log2 p(code) over held-out codes, per codebook.
- bits per second of audio: the codebooks summed, sum_k bits_per_token[k] * frame_rate. This is
  the unit that compares codecs of different frame rates and depths.
- the share of the codec's raw rate that the model removes: 1 - bits/s / raw, with
  raw = n_q * log2(K) * frame_rate (what the codes cost without a model).

The LM scores each held-out clip in consecutive chunks of its context (`held_out_chunks`), each
chunk starting without context as a training crop does; the baselines read whole clips.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from codec.lm.baselines import BASELINES
from codec.lm.data import ShardData, held_out_chunks
from codec.lm.model import TokenLM, token_nll
from codec.lm.record import TokenizerRecord

LN2 = math.log(2.0)


def bits_per_second(bits_per_token: Sequence[float], frame_rate: float) -> float:
    """Codebooks summed: sum_k bits_per_token[k] * frame_rate."""
    return float(sum(bits_per_token)) * frame_rate


def share_removed(bits_per_sec: float, raw_bitrate: float) -> float:
    """1 - bits_per_sec / raw_bitrate: the share of the codec's raw bits a model saves."""
    return 1.0 - bits_per_sec / raw_bitrate


@dataclass
class BitsResult:
    """The held-out cost of one model.

    Attributes:
        name: "lm (delay)", "unigram (add-one)", ...
        bits_per_token: mean bits per code, per codebook `[n_q]`.
        tokens: codes scored per codebook `[n_q]`.
        frame_rate: frames per second of the tokens.
    """

    name: str
    bits_per_token: list[float]
    tokens: list[int]
    frame_rate: float

    @property
    def mean_bits_per_token(self) -> float:
        """Mean over codebooks."""
        return sum(self.bits_per_token) / len(self.bits_per_token)

    @property
    def bits_per_second(self) -> float:
        return bits_per_second(self.bits_per_token, self.frame_rate)

    def to_dict(self, raw_bitrate: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "bits_per_token": self.bits_per_token,
            "mean_bits_per_token": self.mean_bits_per_token,
            "bits_per_second": self.bits_per_second,
            "share_of_raw_removed": share_removed(self.bits_per_second, raw_bitrate),
            "tokens": self.tokens,
        }


def _from_sums(name: str, sums: Sequence[float], counts: Sequence[int], rate: float) -> BitsResult:
    bits = [s / max(n, 1) for s, n in zip(sums, counts)]
    return BitsResult(name, bits, [int(n) for n in counts], rate)


@torch.no_grad()
def token_bits(model: TokenLM, codes: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """Bits of every code `[B, n_q, T]` under the LM (0 where the code is the pad id)."""
    ctx = (
        torch.autocast(codes.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    )
    with ctx:
        logits = model(codes)
    return token_nll(logits, codes, model.pad_id) / LN2


@torch.no_grad()
def lm_bits(
    model: TokenLM,
    chunks: Sequence[torch.Tensor],
    frame_rate: float,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    amp: bool = False,
) -> BitsResult:
    """The LM's held-out bits over `chunks` (int64 `[n_q, T]` each, padded with the pad id)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(model.n_q, dtype=torch.float64)
    counts = torch.zeros(model.n_q, dtype=torch.long)
    for i in range(0, len(chunks), batch_size):
        batch = torch.stack(list(chunks[i : i + batch_size])).to(device)
        bits = token_bits(model, batch, amp).double().cpu()
        sums += bits.sum(dim=(0, 2))
        counts += (batch != model.pad_id).sum(dim=(0, 2)).cpu()
    model.train(was_training)
    return _from_sums(f"lm ({model.scheme})", sums.tolist(), counts.tolist(), frame_rate)


def baseline_results(data: ShardData) -> list[BitsResult]:
    """Every baseline of `codec.lm.baselines`, fitted on `data.train`, on `data.held_out`."""
    rec = data.record
    out = []
    for cls in BASELINES:
        base = cls(rec.n_q, rec.codebook_size).fit(c.codes for c in data.train)
        sums, counts = [0.0] * rec.n_q, [0] * rec.n_q
        for c in data.held_out:
            bits = base.bits(c.codes)
            for q in range(rec.n_q):
                sums[q] += float(bits[q].sum())
                counts[q] += bits.shape[1]
        out.append(_from_sums(base.name, sums, counts, rec.frame_rate))
    return out


@dataclass
class LMReport:
    """The LM beside its baselines on one held-out set."""

    tokenizer: TokenizerRecord
    lm: BitsResult
    baselines: list[BitsResult]
    train_clips: int
    held_out_clips: int
    held_out_seconds: float
    context_frames: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_baseline(self) -> BitsResult:
        return min(self.baselines, key=lambda r: r.bits_per_second)

    def to_dict(self) -> dict[str, Any]:
        raw = self.tokenizer.raw_bitrate
        return {
            "tokenizer": self.tokenizer.to_dict(),
            "raw_bits_per_second": raw,
            "context_frames": self.context_frames,
            "train_clips": self.train_clips,
            "held_out_clips": self.held_out_clips,
            "held_out_seconds": self.held_out_seconds,
            "lm": self.lm.to_dict(raw),
            "baselines": [b.to_dict(raw) for b in self.baselines],
            "best_baseline": self.best_baseline.name,
            **self.extra,
        }

    def format_table(self) -> str:
        """One row per model: bits per token per codebook, their mean, bits/s, share removed."""
        raw, n_q = self.tokenizer.raw_bitrate, self.tokenizer.n_q
        cb = " ".join(f"{'cb' + str(q):>6}" for q in range(n_q))
        lines = [
            f"{self.tokenizer.describe()}: raw {raw:.1f} bit/s; held-out {self.held_out_clips} "
            f"clips ({self.held_out_seconds:.1f} s), baselines fitted on {self.train_clips}",
            f"{'model':<22} {cb} {'mean':>6} {'bit/s':>8} {'removed':>8}",
        ]
        for r in [self.lm, *self.baselines]:
            per = " ".join(f"{b:>6.3f}" for b in r.bits_per_token)
            mark = " *" if r is self.best_baseline else ""
            lines.append(
                f"{r.name:<22} {per} {r.mean_bits_per_token:>6.3f} {r.bits_per_second:>8.1f} "
                f"{100 * share_removed(r.bits_per_second, raw):>7.1f}%{mark}"
            )
        lines.append(
            "bits per token per codebook; bit/s = codebooks summed x frame rate; "
            "* the best baseline"
        )
        return "\n".join(lines)


def score_held_out(
    model: TokenLM,
    data: ShardData,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    amp: bool = False,
) -> LMReport:
    """The LM and the baselines on every held-out clip of `data`."""
    rec = data.record
    chunks = held_out_chunks(data.held_out, model.context_frames, model.pad_id)
    lm = lm_bits(model, chunks, rec.frame_rate, batch_size, device, amp)
    seconds = sum(c.frames for c in data.held_out) / rec.frame_rate
    return LMReport(
        rec,
        lm,
        baseline_results(data),
        len(data.train),
        len(data.held_out),
        seconds,
        model.context_frames,
    )
