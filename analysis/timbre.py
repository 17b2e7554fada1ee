"""Timbre transfer: move a clip's latents toward a target instrument, decode before/after.

The paper-faithful method ("mean") shifts the clip's time-mean onto the centroid c of the target
group (mean pooled latent of its sounds):

    z'_t = z_t + alpha * (c - mean_t z_t),   alpha in [0, 1.5]

alpha = 1 puts the clip's time-mean exactly on the centroid while keeping its deviations over
time (pitch contour, rhythm). Candidates measured against the audio judge (`analysis.metrics.judge`,
`analysis.metrics.judge_grid`), selected with `method`; the default is "pitch_adain", which beat the
mean shift when measured (same or better "recognised as target", far more pitches kept with the
bundled ALMTokenizer; the only one passing the gate through a faithful vocoder in the tests):

- "adain": per-channel statistics matching (AdaIN): alpha = 1 gives
  `(z_t - mu_s) / sd_s * sd_c + mu_c`, with mu_c, sd_c the mean over the target's sounds of
  each sound's per-channel time-mean and time-std; alpha interpolates both mean and scale.
- "pitch_mean", "pitch_adain": the same, with the target placed at the source's pitch: the
  statistics of its notes at the nearest pitches below and above the source's (from
  `codec.metrics.estimate_f0`), interpolated linearly in pitch; outside the target's range its
  nearest pitch; an unpitched source (speech) uses every note of the target.
- "channels": AdaIN on a subset of channels only: those whose pooled value tells instruments
  apart most and pitches least (ANOVA F ratio over the dataset's pooled latents), with the
  pitch-matched target; the other channels keep the source.
- "knn": frame matching in the style of kNN-VC (Baas et al., 2023): each latent frame moves
  toward the mean of its KNN_FRAMES nearest frames (cosine) among the frames of the target
  notes at the pitches around the source's, `z'_t = z_t + alpha (knn(z_t) - z_t)`; the sequence (and
  so rhythm and loudness contour) is the source's, the frames themselves the target's.

For ALMTokenizer the latents that every method moves are already the query tokens (the encoder
outputs at the query positions, `[n, D]` with n = T / w), not the patch frames.

Both "before" (alpha = 0) and "after" go through the same decode path, so they differ only by
the transfer. With `quantize=True` both are snapped to the codec's codebooks before decoding
(needs the backend's optional `quantize`; see `analysis.codec_ops.requantize`); by default a
codec whose decoder only ever saw quantized latents (`Codec.decodes_quantized_only`,
ALMTokenizer) is re-quantized, others decode the moved continuous latents.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.codec_ops import (
    as_batch,
    codec_identity,
    decode_frames,
    effective_window,
    requantize,
)
from analysis.groups import AttributeGroup, parse_group, select_group
from analysis.latents import DEFAULT_CACHE_DIR, encode_waveform, extract_latents
from codec.audio import load_audio
from codec.metrics import estimate_f0
from codec.models.base import Codec

log = logging.getLogger(__name__)

ALPHA_RANGE = (0.0, 1.5)
METHODS = ("mean", "adain", "pitch_mean", "pitch_adain", "channels", "knn")
METHOD_HELP = {
    "mean": "paper: shift the time-mean onto the target centroid",
    "adain": "match per-channel mean and std to the target's",
    "pitch_mean": "mean shift toward the target notes nearest the source pitch",
    "pitch_adain": "mean + std matching to the target notes nearest the source pitch",
    "channels": "pitch_adain on the instrument channels only",
    "knn": "replace each frame by its nearest frames of the target notes nearest in pitch",
}
DEFAULT_METHOD = "pitch_adain"  # measured: see scripts/measure_judge.py and the README
KNN_FRAMES = 4
CHANNEL_FRACTION = 0.5
_EPS = 1e-4
_STATS_CACHE: OrderedDict[tuple, _MemberStats] = OrderedDict()
_CHANNEL_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_CACHE_SIZE = 64


def _check_alpha(alpha: float) -> None:
    if not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
        raise ValueError(f"alpha must be in [{ALPHA_RANGE[0]}, {ALPHA_RANGE[1]}], got {alpha}")


def check_method(method: str) -> str:
    """The method name, or ValueError listing the known ones."""
    if method not in METHODS:
        raise ValueError(f"unknown transfer method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def shift_to_centroid(frames: np.ndarray, centroid: np.ndarray, alpha: float) -> np.ndarray:
    """`z'_t = z_t + alpha (c - mean_t z_t)` for `frames [T, D]`, `centroid [D]`: `[T, D]`."""
    _check_alpha(alpha)
    if frames.ndim != 2 or centroid.shape != (frames.shape[1],):
        raise ValueError(
            f"frames [T, D] and centroid [D] expected, got {frames.shape}, {centroid.shape}"
        )
    shift = centroid.astype(np.float64) - frames.astype(np.float64).mean(0)
    return (frames + alpha * shift).astype(frames.dtype)


def match_statistics(
    frames: np.ndarray,
    target_mean: np.ndarray,
    target_std: np.ndarray,
    alpha: float,
    channels: np.ndarray | None = None,
) -> np.ndarray:
    """AdaIN-style transfer of `frames [T, D]` toward per-channel `target_mean`, `target_std`.

    With mu, sd the clip's per-channel time-mean and time-std, the std moves to
    `sd + alpha (target_std - sd)` and the mean to `mu + alpha (target_mean - mu)`; alpha = 1 is
    `(z - mu) / sd * target_std + target_mean`, alpha = 0 the clip itself. `channels` (bool
    `[D]`) limits the change to those channels.
    """
    _check_alpha(alpha)
    if alpha == 0:
        return frames.copy()
    d = frames.shape[1] if frames.ndim == 2 else -1
    if d < 0 or target_mean.shape != (d,) or target_std.shape != (d,):
        raise ValueError(
            f"frames [T, D] and target statistics [D] expected, got {frames.shape}, "
            f"{target_mean.shape}, {target_std.shape}"
        )
    z = frames.astype(np.float64)
    mu, sd = z.mean(0), np.maximum(z.std(0), _EPS)
    new_sd = np.maximum(sd + alpha * (np.maximum(target_std, 0.0) - sd), 0.0)
    out = (z - mu) * (new_sd / sd) + mu + alpha * (target_mean - mu)
    if channels is not None:
        out = np.where(np.asarray(channels, dtype=bool)[None], out, z)
    return out.astype(frames.dtype)


def knn_frames(
    frames: np.ndarray, pool: np.ndarray, alpha: float, k: int = KNN_FRAMES
) -> np.ndarray:
    """Move each frame of `frames [T, D]` toward the mean of its `k` nearest (cosine) frames
    of `pool [P, D]`: `z + alpha (knn(z) - z)`."""
    _check_alpha(alpha)
    if pool.ndim != 2 or pool.shape[1] != frames.shape[1] or not len(pool):
        raise ValueError(f"pool [P, D] with D = {frames.shape[1]} expected, got {pool.shape}")
    z = frames.astype(np.float64)
    p = pool.astype(np.float64)
    zn = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-8)
    pn = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-8)
    k = max(1, min(int(k), len(p)))
    nearest = np.argpartition(-(zn @ pn.T), k - 1, axis=1)[:, :k]  # [T, k]
    matched = p[nearest].mean(1)
    return (z + alpha * (matched - z)).astype(frames.dtype)


def source_midi(wav: torch.Tensor, sr: int) -> float | None:
    """Fractional MIDI pitch of a clip (`estimate_f0`), None when it has no pitch."""
    f0 = estimate_f0(torch.as_tensor(wav).detach().float().cpu().reshape(-1), sr)
    return None if not math.isfinite(f0) or f0 <= 0 else 69.0 + 12.0 * math.log2(f0 / 440.0)


@dataclass
class _MemberStats:
    members: list[Any]
    means: np.ndarray  # [M, D] pooled latents
    stds: np.ndarray  # [M, D] per-channel time-std
    midis: np.ndarray  # [M] float, NaN when unknown
    frames: list[np.ndarray] = field(default_factory=list)  # M x [T_m, D]


@dataclass
class TargetStats:
    """Latent statistics of the target a clip moves toward.

    Attributes:
        group: the target group.
        mean, std: per-channel target mean `[D]` (the centroid of the chosen sounds) and std.
        members: the sounds the statistics come from (those around the pitch, or all).
        pitch_matched: True when the sounds were chosen by nearness to the source's pitch.
        frames: the chosen sounds' latent frames stacked, `[sum T_m, D]` (for "knn").
    """

    group: AttributeGroup
    mean: np.ndarray
    std: np.ndarray
    members: list[Any] = field(default_factory=list)
    pitch_matched: bool = False
    frames: np.ndarray | None = None


def _member_stats(
    codec: Codec, items: Sequence[Any], group: AttributeGroup, win: int | None, cache_dir: Any
) -> _MemberStats:
    members = select_group(items, group)
    key = (codec_identity(codec), win, group, tuple(str(getattr(m, "path", m)) for m in members))
    if key in _STATS_CACHE:
        _STATS_CACHE.move_to_end(key)
        return _STATS_CACHE[key]
    lat = extract_latents(codec, members, win, cache_dir=cache_dir, progress=False)
    stds = np.stack([c.frames.std(0) for c in lat.clips]).astype(np.float32)
    midis = np.array([float(getattr(m, "midi", None) or math.nan) for m in members])
    st = _MemberStats(members, lat.pooled, stds, midis, [c.frames for c in lat.clips])
    _STATS_CACHE[key] = st
    while len(_STATS_CACHE) > _CACHE_SIZE:
        _STATS_CACHE.popitem(last=False)
    return st


def _pitch_weights(midis: np.ndarray, near: float) -> np.ndarray:
    """Weights `[M]` over sounds that place a target at MIDI pitch `near`: the sounds at the
    nearest pitch at or below and at or above, linearly interpolated between the two pitches;
    only the nearest pitch outside the group's range (no extrapolation)."""
    w = np.zeros(len(midis))
    ok = np.isfinite(midis)
    below, above = ok & (midis <= near), ok & (midis >= near)
    lo = midis[below].max() if below.any() else None
    hi = midis[above].min() if above.any() else None
    if lo is None or hi is None or lo == hi:
        m = hi if lo is None else lo if hi is None else lo
        sel = ok & (midis == m)
        w[sel] = 1.0 / sel.sum()
        return w
    t = (near - lo) / (hi - lo)
    for m, weight in ((lo, 1.0 - t), (hi, t)):
        sel = midis == m
        w[sel] += weight / sel.sum()
    return w


def target_stats(
    codec: Codec,
    items: Sequence[Any],
    target: AttributeGroup | str,
    window: int | None = None,
    near_midi: float | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> TargetStats:
    """Target mean/std of a group: the mean over all its sounds, or, with `near_midi` (and a
    group with pitched sounds), the group placed at that pitch: its sounds at the nearest
    pitches below and above, interpolated linearly in pitch (`_pitch_weights`).

    Raises:
        GroupError: unknown or empty group.
    """
    if isinstance(target, str):
        target = parse_group(target, {getattr(it, "instrument", "") for it in items})
    win = effective_window(codec, window)
    st = _member_stats(codec, items, target, win, cache_dir)
    weights = np.full(len(st.members), 1.0 / len(st.members))
    matched = near_midi is not None and bool(np.isfinite(st.midis).any())
    if matched:
        weights = _pitch_weights(st.midis, float(near_midi))
    idx = np.flatnonzero(weights > 0)
    w = weights[idx, None]
    return TargetStats(
        target,
        (w * st.means[idx]).sum(0).astype(np.float32) if matched else st.means.mean(0),
        (w * st.stds[idx]).sum(0).astype(np.float32),
        [st.members[i] for i in idx],
        matched,
        np.concatenate([st.frames[i] for i in idx]) if st.frames else None,
    )


def instrument_channels(
    codec: Codec,
    items: Sequence[Any],
    window: int | None = None,
    fraction: float = CHANNEL_FRACTION,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> np.ndarray:
    """Bool mask `[D]` of the `fraction` of channels whose pooled latent separates instruments
    most relative to pitches: ranked by F(instrument) / F(MIDI pitch) (one-way ANOVA over the
    pitched notes of `items`)."""
    from sklearn.feature_selection import f_classif

    win = effective_window(codec, window)
    notes = [it for it in items if getattr(it, "midi", None) is not None]
    key = (codec_identity(codec), win, float(fraction), tuple(str(it.path) for it in notes))
    if key in _CHANNEL_CACHE:
        return _CHANNEL_CACHE[key]
    if len({it.instrument for it in notes}) < 2:
        raise ValueError("instrument channels need pitched notes of two or more instruments")
    pooled = extract_latents(codec, notes, win, cache_dir=cache_dir, progress=False).pooled
    with np.errstate(all="ignore"):
        f_inst = np.nan_to_num(f_classif(pooled, [it.instrument for it in notes])[0])
        f_pitch = np.nan_to_num(f_classif(pooled, [int(it.midi) for it in notes])[0])
    score = f_inst / (f_pitch + 1.0)
    n = max(1, int(round(fraction * pooled.shape[1])))
    mask = np.zeros(pooled.shape[1], dtype=bool)
    mask[np.argsort(-score, kind="stable")[:n]] = True
    _CHANNEL_CACHE[key] = mask
    while len(_CHANNEL_CACHE) > _CACHE_SIZE:
        _CHANNEL_CACHE.popitem(last=False)
    return mask


def transfer_frames(
    codec: Codec,
    frames: np.ndarray,
    wav: torch.Tensor | None,
    target: AttributeGroup | str,
    items: Sequence[Any],
    alpha: float = 1.0,
    method: str = DEFAULT_METHOD,
    window: int | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> tuple[np.ndarray, TargetStats]:
    """Move latents `frames [T, D]` of a clip (its waveform `wav` gives the pitch for the
    pitch-matched methods) toward `target` with `method`: (moved frames, target statistics).

    Raises:
        ValueError: unknown method or alpha out of range. GroupError: unknown or empty group.
    """
    check_method(method)
    _check_alpha(alpha)
    near = None
    if method in ("pitch_mean", "pitch_adain", "channels", "knn") and wav is not None:
        near = source_midi(wav, codec.sample_rate)
    ts = target_stats(codec, items, target, window, near, cache_dir)
    if method in ("mean", "pitch_mean"):
        return shift_to_centroid(frames, ts.mean, alpha), ts
    if method == "knn":
        assert ts.frames is not None
        return knn_frames(frames, ts.frames, alpha), ts
    mask = (
        instrument_channels(codec, items, window, cache_dir=cache_dir)
        if method == "channels"
        else None
    )
    return match_statistics(frames, ts.mean, ts.std, alpha, mask), ts


@dataclass
class TimbreResult:
    """Timbre transfer output for one codec.

    Attributes:
        codec_name, window: the codec and its effective window.
        group: the target group.
        alpha: shift strength.
        before: decoded unshifted latents `[1, N]`.
        after: decoded shifted latents `[1, N]`.
        latents_before, latents_after: the latent sequences `[T, D]` that were decoded (after
            re-quantization when `quantize`).
        centroid: the target mean `[D]` (the group centroid for "mean"/"adain").
        quantized: whether the latents were re-quantized.
        method: the transfer method; target: its target statistics.
    """

    codec_name: str
    window: int | None
    group: AttributeGroup
    alpha: float
    before: torch.Tensor
    after: torch.Tensor
    latents_before: np.ndarray
    latents_after: np.ndarray
    centroid: np.ndarray
    quantized: bool = False
    method: str = DEFAULT_METHOD
    target: TargetStats | None = None


def timbre_transfer(
    codec: Codec,
    clip: torch.Tensor | str | Path,
    target: AttributeGroup | str,
    items: Sequence[Any],
    alpha: float = 1.0,
    window: int | None = None,
    quantize: bool | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    method: str = DEFAULT_METHOD,
) -> TimbreResult:
    """Move a clip's latents toward a target group and decode before/after.

    Args:
        codec: any Codec.
        clip: waveform `[N]` / `[1, N]` at 24 kHz, or a file path.
        target: group or group text ("cello", "bass A3").
        items: dataset records the group is drawn from.
        alpha: strength in [0, 1.5].
        window: window size (ignored by codecs without one).
        quantize: re-quantize the latents before decoding; None: when the codec declares
            `decodes_quantized_only` (ALMTokenizer).
        cache_dir: latent cache for the group's clips.
        method: one of METHODS (see the module docstring).

    Raises:
        GroupError: unknown or empty group. ValueError: alpha out of range or unknown method.
        NotImplementedError: `quantize` on a codec without a public quantize step.
    """
    _check_alpha(alpha)
    check_method(method)
    win = effective_window(codec, window)
    wav = (
        load_audio(clip, codec.sample_rate) if isinstance(clip, (str, Path)) else as_batch(clip)[0]
    )
    z = encode_waveform(codec, wav, win)
    shifted, ts = transfer_frames(codec, z.frames, wav, target, items, alpha, method, win,
                                  cache_dir)  # fmt: skip
    before, after = z.frames, shifted
    quantize = codec.decodes_quantized_only if quantize is None else quantize
    if quantize:
        both = torch.from_numpy(np.stack([before, after])).transpose(1, 2)  # [2, D, T]
        q = requantize(codec, both, win).detach().float().cpu().transpose(1, 2).numpy()
        before, after = q[0], q[1]
    n = z.num_samples
    return TimbreResult(
        codec_name=codec.name,
        window=win,
        group=ts.group,
        alpha=float(alpha),
        before=decode_frames(codec, torch.from_numpy(np.ascontiguousarray(before)), win, n, False),
        after=decode_frames(codec, torch.from_numpy(np.ascontiguousarray(after)), win, n, False),
        latents_before=before,
        latents_after=after,
        centroid=ts.mean,
        quantized=quantize,
        method=method,
        target=ts,
    )
