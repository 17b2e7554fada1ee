"""Centroid-based timbre transfer.

For a clip with continuous latents z_t and a target attribute group with centroid c (mean
pooled latent of its sounds):

    z'_t = z_t + alpha * (c - mean_t z_t),   alpha in [0, 1.5]

alpha = 1 puts the clip's time-mean exactly on the centroid while keeping its deviations over
time (pitch contour, rhythm). Both "before" (alpha = 0) and "after" go through the same decode
path, so they differ only by the shift. With `quantize=True` both are snapped to the codec's
codebooks before decoding (needs the backend's optional `quantize`; see
`analysis.codec_ops.requantize`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.codec_ops import as_batch, decode_frames, effective_window, requantize
from analysis.groups import AttributeGroup, group_centroid
from analysis.latents import DEFAULT_CACHE_DIR, encode_waveform
from codec.audio import load_audio
from codec.base import Codec

log = logging.getLogger(__name__)

ALPHA_RANGE = (0.0, 1.5)


def shift_to_centroid(frames: np.ndarray, centroid: np.ndarray, alpha: float) -> np.ndarray:
    """`z'_t = z_t + alpha (c - mean_t z_t)` for `frames [T, D]`, `centroid [D]`: `[T, D]`."""
    if not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
        raise ValueError(f"alpha must be in [{ALPHA_RANGE[0]}, {ALPHA_RANGE[1]}], got {alpha}")
    if frames.ndim != 2 or centroid.shape != (frames.shape[1],):
        raise ValueError(
            f"frames [T, D] and centroid [D] expected, got {frames.shape}, {centroid.shape}"
        )
    shift = centroid.astype(np.float64) - frames.astype(np.float64).mean(0)
    return (frames + alpha * shift).astype(frames.dtype)


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
        centroid: the target centroid `[D]`.
        quantized: whether the latents were re-quantized.
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


def timbre_transfer(
    codec: Codec,
    clip: torch.Tensor | str | Path,
    target: AttributeGroup | str,
    items: Sequence[Any],
    alpha: float = 1.0,
    window: int | None = None,
    quantize: bool = False,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> TimbreResult:
    """Move a clip's latents toward a group's centroid and decode before/after.

    Args:
        codec: any Codec.
        clip: waveform `[N]` / `[1, N]` at 24 kHz, or a file path.
        target: group or group text ("cello", "bass A3").
        items: dataset records the group is drawn from.
        alpha: strength in [0, 1.5].
        window: window size (ignored by codecs without one).
        quantize: re-quantize the latents before decoding (ALMTokenizer).
        cache_dir: latent cache for the group's clips.

    Raises:
        GroupError: unknown or empty group. ValueError: alpha out of range.
        NotImplementedError: `quantize` on a codec without a public quantize step.
    """
    if not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
        raise ValueError(f"alpha must be in [{ALPHA_RANGE[0]}, {ALPHA_RANGE[1]}], got {alpha}")
    win = effective_window(codec, window)
    wav = (
        load_audio(clip, codec.sample_rate) if isinstance(clip, (str, Path)) else as_batch(clip)[0]
    )
    gc = group_centroid(codec, items, target, win, cache_dir)
    z = encode_waveform(codec, wav, win)
    shifted = shift_to_centroid(z.frames, gc.centroid, alpha)
    before, after = z.frames, shifted
    if quantize:
        both = torch.from_numpy(np.stack([before, after])).transpose(1, 2)  # [2, D, T]
        q = requantize(codec, both, win).detach().float().cpu().transpose(1, 2).numpy()
        before, after = q[0], q[1]
    n = z.num_samples
    return TimbreResult(
        codec_name=codec.name,
        window=win,
        group=gc.group,
        alpha=float(alpha),
        before=decode_frames(codec, torch.from_numpy(np.ascontiguousarray(before)), win, n),
        after=decode_frames(codec, torch.from_numpy(np.ascontiguousarray(after)), win, n),
        latents_before=before,
        latents_after=after,
        centroid=gc.centroid,
        quantized=quantize,
    )
