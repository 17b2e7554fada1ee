"""The timbre-transfer grid, judged by ear: N held-out clips x every target instrument x alpha.

For each codec and transfer method (`analysis.timbre.METHODS`), every source clip is moved
toward every other instrument at each alpha (0.5 and 1.0 by default), decoded, and the audio
judge (`analysis.metrics.judge`) says what the result sounds like and which pitch it has:
- recognised as target: the judge's most probable class is the target instrument;
- pitch kept: the decoded pitch is within a quarter tone of the source clip's pitch
  (`codec.metrics.pitch_matches`), counted over pitched sources (speech and notes without a
  detectable pitch are left out of this share);
- loudness change: RMS level of the result minus that of the source clip, in dB.

Target statistics come from `target_items` (the training split's notes); sources should be
held-out sounds.

The ceiling (method "ceiling", with `ceiling=True`): for each source and target, the target
instrument's own note nearest the source's pitch (from `target_items`) is encoded and decoded
by the same codec and judged. No latent transfer can sound more like the target than the
codec's reconstruction of a real target note does, so this share bounds every method's
"recognised as target" from above, up to the judge's own errors.

The gate (issue 14): at alpha 1, >= 50 % recognised as target while the pitch is kept on
>= 80 % of pitched sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from analysis.codec_ops import codec_device, effective_window, requantize
from analysis.latents import DEFAULT_CACHE_DIR, encode_waveform
from analysis.metrics.judge import Judge, judge_label
from analysis.timbre import METHODS, transfer_frames
from codec.audio import load_audio
from codec.metrics import estimate_f0
from codec.models.base import Codec

ALPHAS = (0.5, 1.0)
GATE_ALPHA = 1.0
GATE_RECOGNISED = 0.5
GATE_PITCH = 0.8
DECODE_BATCH = 16
CEILING = "ceiling"


@dataclass
class TransferRow:
    """One judged transfer (one source, target, method, alpha, codec)."""

    codec: str
    window: int | None
    method: str
    alpha: float
    quantized: bool
    source: str
    source_label: str
    target: str
    heard: str
    p_target: float
    recognised: bool
    before_heard: str
    pitched: bool
    pitch_kept: bool
    before_pitch_kept: bool
    loudness_change_db: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GridSummary:
    """Shares over the transfers of one codec, method and alpha."""

    codec: str
    method: str
    alpha: float
    quantized: bool
    n: int
    recognised_as_target: float
    mean_p_target: float
    pitch_kept: float
    n_pitched: int
    loudness_change_db: float
    passes_gate: bool
    before_pitch_kept: float = math.nan  # the same sources decoded without a transfer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def same_pitch(f_a: float, f_b: float, cents: float = 50.0) -> bool:
    """Both pitched and within `cents` (as `codec.metrics.pitch_matches`, on known f0s)."""
    if not (math.isfinite(f_a) and math.isfinite(f_b)) or f_a <= 0 or f_b <= 0:
        return False
    return abs(1200 * math.log2(f_a / f_b)) <= cents


def rms_db(wav: torch.Tensor) -> float:
    x = torch.as_tensor(wav).detach().double().reshape(-1)
    return 10 * math.log10(float(x.pow(2).mean()) + 1e-12) if x.numel() else math.nan


def grid_sources(items: Sequence[Any], n: int, seed: int = 0) -> list[Any]:
    """`n` clips drawn round-robin over the judge's classes (seeded), so every instrument and
    speech appear before any appears twice."""
    rng = np.random.default_rng(seed)
    by: dict[str, list[Any]] = {}
    for it in items:
        by.setdefault(judge_label(it), []).append(it)
    pools = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by.items())}
    out: list[Any] = []
    while len(out) < n and any(pools.values()):
        for k in list(pools):
            if pools[k] and len(out) < n:
                out.append(pools[k].pop())
    return out


def transfer_grid(
    codec: Codec,
    judge: Judge,
    sources: Sequence[Any],
    target_items: Sequence[Any],
    methods: Sequence[str] = ("mean",),
    alphas: Sequence[float] = ALPHAS,
    window: int | None = 6,
    targets: Sequence[str] | None = None,
    quantize: bool = False,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    progress: bool = True,
    on_row: Callable[[TransferRow], None] | None = None,
    label: str | None = None,
    ceiling: bool = False,
) -> list[TransferRow]:
    """Judge every transfer of `sources` (records with `.path`) toward every target instrument
    (default: every instrument of `target_items` that the judge knows), skipping a source's own
    instrument. With `quantize`, the moved latents (and the "before" latents) are snapped to
    the codec's codebooks before decoding, as its tokens would be. Rows name the codec by
    `label` (default `codec.name`). With `ceiling`, one more row per source and target
    judges the codec's reconstruction of the target's nearest real note (see the module
    docstring).

    Raises:
        ValueError: an unknown method.
    """
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown transfer methods {bad}; choose from {', '.join(METHODS)}")
    win = effective_window(codec, window)
    if targets is None:
        insts = {str(getattr(it, "instrument", "")) for it in target_items}
        targets = sorted(i for i in insts if i in judge.classes and i != "speech")
    sr = codec.sample_rate
    rows: list[TransferRow] = []
    total = len(sources) * len(targets) * len(methods) * len(alphas)
    bar = tqdm(total=total, desc=f"transfer grid {label or codec.name}", disable=not progress)
    codec.eval()

    def decode(frames: list[np.ndarray], n: int) -> list[torch.Tensor]:
        """Decode equal-length latent sequences `[T, D]` in batches: `[1, N]` each."""
        out = []
        for i in range(0, len(frames), DECODE_BATCH):
            lat = torch.from_numpy(np.stack(frames[i : i + DECODE_BATCH])).transpose(1, 2)
            lat = lat.to(codec_device(codec), torch.float32)  # [B, D, T]
            with torch.inference_mode():
                if quantize:
                    lat = requantize(codec, lat, win)
                wav = codec.decode(lat, win, num_samples=n)  # [B, 1, N]
            out += [w.detach().float().cpu() for w in wav]
        return out

    by_target: dict[str, list[Any]] = {}
    for it in target_items:
        by_target.setdefault(str(getattr(it, "instrument", "")), []).append(it)
    ceiling_memo: dict[str, tuple[str, float, float, float]] = {}

    def reconstructed_note(target: str, near_hz: float) -> tuple[str, float, float, float]:
        """(heard, P(target), f0, level dB) of the codec's reconstruction of the target's
        note nearest `near_hz` (its middle note when the source has no pitch)."""
        notes = [it for it in by_target.get(target, []) if getattr(it, "midi", None) is not None]
        if not notes:
            return "", 0.0, math.nan, math.nan
        want = 69 + 12 * math.log2(near_hz / 440) if math.isfinite(near_hz) and near_hz > 0 else (
            float(np.median([it.midi for it in notes]))
        )  # fmt: skip
        note = min(notes, key=lambda it: (abs(it.midi - want), str(it.path)))
        key = str(note.path)
        if key not in ceiling_memo:
            clip = load_audio(note.path, sr)
            zc = encode_waveform(codec, clip, win)
            out = decode([zc.frames], zc.num_samples)[0]
            probs = judge.proba(out, sr)
            ceiling_memo[key] = (max(probs, key=probs.__getitem__), probs.get(target, 0.0),
                                 estimate_f0(out, sr), rms_db(out))  # fmt: skip
        return ceiling_memo[key]

    for src in sources:
        wav = load_audio(getattr(src, "path", src), sr)
        z = encode_waveform(codec, wav, win)
        n = z.num_samples
        before = decode([z.frames], n)[0]
        before_heard = judge.hear(before, sr).label
        src_label = judge_label(src)
        f_src = estimate_f0(wav, sr)
        pitched = src_label != "speech" and math.isfinite(f_src)
        before_kept = pitched and same_pitch(estimate_f0(before, sr), f_src)
        level = rms_db(wav)
        jobs = [(t, m, float(a)) for t in targets if t != getattr(src, "instrument", None)
                for m in methods for a in alphas]  # fmt: skip
        bar.update(total // max(len(sources), 1) - len(jobs))
        moved = [
            transfer_frames(codec, z.frames, wav, t, target_items, a, m, win,
                            cache_dir=cache_dir)[0]
            for t, m, a in jobs
        ]  # fmt: skip
        for (target, method, alpha), after in zip(jobs, decode(moved, n)):
            probs = judge.proba(after, sr)
            heard = max(probs, key=probs.__getitem__)
            row = TransferRow(
                codec=label or codec.name, window=win, method=method, alpha=alpha,
                quantized=quantize,
                source=Path(str(getattr(src, "path", src))).name, source_label=src_label,
                target=target, heard=heard, p_target=probs.get(target, 0.0),
                recognised=heard == target, before_heard=before_heard, pitched=pitched,
                pitch_kept=pitched and same_pitch(estimate_f0(after, sr), f_src),
                before_pitch_kept=before_kept, loudness_change_db=rms_db(after) - level,
            )  # fmt: skip
            rows.append(row)
            if on_row is not None:
                on_row(row)
            bar.update(1)
        if ceiling:
            for target in targets:
                if target == getattr(src, "instrument", None):
                    continue
                heard, p_t, f_out, lvl = reconstructed_note(target, f_src)
                row = TransferRow(
                    codec=label or codec.name, window=win, method=CEILING, alpha=GATE_ALPHA,
                    quantized=quantize, source=Path(str(getattr(src, "path", src))).name,
                    source_label=src_label, target=target, heard=heard, p_target=p_t,
                    recognised=heard == target, before_heard=before_heard, pitched=pitched,
                    pitch_kept=pitched and same_pitch(f_out, f_src), before_pitch_kept=before_kept,
                    loudness_change_db=lvl - level,
                )  # fmt: skip
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    bar.close()
    return rows


def summarise(rows: Sequence[TransferRow]) -> list[GridSummary]:
    """One summary per (codec, method, alpha, quantized), in first-seen order."""
    groups: dict[tuple[str, str, float, bool], list[TransferRow]] = {}
    for r in rows:
        groups.setdefault((r.codec, r.method, r.alpha, r.quantized), []).append(r)
    out = []
    for (codec, method, alpha, quantized), rs in groups.items():
        pitched = [r for r in rs if r.pitched]
        rec = float(np.mean([r.recognised for r in rs]))
        kept = float(np.mean([r.pitch_kept for r in pitched])) if pitched else math.nan
        kept0 = float(np.mean([r.before_pitch_kept for r in pitched])) if pitched else math.nan
        out.append(
            GridSummary(
                codec=codec, method=method, alpha=alpha, quantized=quantized, n=len(rs),
                recognised_as_target=rec,
                mean_p_target=float(np.mean([r.p_target for r in rs])), pitch_kept=kept,
                n_pitched=len(pitched),
                loudness_change_db=float(np.mean([r.loudness_change_db for r in rs])),
                passes_gate=alpha == GATE_ALPHA and method != CEILING and rec >= GATE_RECOGNISED
                and kept >= GATE_PITCH,
                before_pitch_kept=kept0,
            )
        )  # fmt: skip
    return out


def summary_markdown(summaries: Sequence[GridSummary]) -> str:
    """A Markdown table of grid summaries."""
    lines = [
        "| codec | latents | method | alpha | transfers | recognised as target | mean P(target) "
        "| pitch kept (pitched sources) | pitch kept without transfer | loudness change dB "
        "| gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        gate = "pass" if s.passes_gate else ("fail" if s.alpha == GATE_ALPHA else "")
        if s.method == CEILING:
            gate = "bound"
        kept = "-" if math.isnan(s.pitch_kept) else f"{100 * s.pitch_kept:.0f}% of {s.n_pitched}"
        kept0 = "-" if math.isnan(s.before_pitch_kept) else f"{100 * s.before_pitch_kept:.0f}%"
        space = "quantized" if s.quantized else "continuous"
        lines.append(
            f"| {s.codec} | {space} | {s.method} | {s.alpha:g} | {s.n} "
            f"| {100 * s.recognised_as_target:.0f}% | {s.mean_p_target:.2f} | {kept} | {kept0} "
            f"| {s.loudness_change_db:+.1f} | {gate} |"
        )
    return "\n".join(lines) + "\n"
