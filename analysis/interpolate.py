"""Interpolation of latent sequences: time resampling, linear and spherical paths.

Sequences are time-first arrays `[T, D]` as stored by `analysis.latents`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MODES = ("linear", "spherical")


def resample_time(frames: np.ndarray, length: int) -> np.ndarray:
    """Linearly resample a sequence `[T, D]` to `[length, D]` (endpoints kept; identity when
    `length == T`)."""
    t = frames.shape[0]
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if t == length:
        return frames.copy()
    if t == 1:
        return np.repeat(frames, length, axis=0)
    pos = np.linspace(0.0, t - 1.0, length)
    lo = np.floor(pos).astype(int).clip(0, t - 1)
    hi = np.minimum(lo + 1, t - 1)
    frac = (pos - lo)[:, None]
    return ((1.0 - frac) * frames[lo] + frac * frames[hi]).astype(frames.dtype)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Linear interpolation `(1 - t) a + t b`; exactly `a` at t = 0 and `b` at t = 1.

    `t` is a scalar or broadcasts against `[T, 1]`."""
    t_arr = np.asarray(t, dtype=np.float64)
    out = (1.0 - t_arr) * a + t_arr * b
    out = np.where(t_arr == 0.0, a, np.where(t_arr == 1.0, b, out))
    return out.astype(a.dtype)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float, eps: float = 1e-7) -> np.ndarray:
    """Spherical interpolation of each frame vector `[T, D]`: the direction moves along the
    great circle from a to b while the norm is interpolated linearly. Falls back to `lerp` for
    (nearly) parallel or zero vectors; exactly `a` at t = 0 and `b` at t = 1."""
    t_arr = np.broadcast_to(np.asarray(t, dtype=np.float64), (a.shape[0], 1))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na = np.linalg.norm(a64, axis=-1, keepdims=True)
    nb = np.linalg.norm(b64, axis=-1, keepdims=True)
    ua, ub = a64 / np.maximum(na, eps), b64 / np.maximum(nb, eps)
    cos = np.clip((ua * ub).sum(-1, keepdims=True), -1.0, 1.0)
    omega = np.arccos(cos)
    so = np.sin(omega)
    safe = so > 1e-6
    so_safe = np.where(safe, so, 1.0)
    wa = np.where(safe, np.sin((1.0 - t_arr) * omega) / so_safe, 1.0 - t_arr)
    wb = np.where(safe, np.sin(t_arr * omega) / so_safe, t_arr)
    direction = wa * ua + wb * ub
    norm = (1.0 - t_arr) * na + t_arr * nb
    out = np.where(
        safe & (na > eps) & (nb > eps), direction * norm, (1.0 - t_arr) * a64 + t_arr * b64
    )
    out = np.where(t_arr == 0.0, a64, np.where(t_arr == 1.0, b64, out))
    return out.astype(a.dtype)


def interpolate(
    a: np.ndarray, b: np.ndarray, t: np.ndarray | float, mode: str = "linear"
) -> np.ndarray:
    """`lerp` or `slerp` by name."""
    if mode == "linear":
        return lerp(a, b, t)
    if mode == "spherical":
        return slerp(a, b, t)
    raise ValueError(f"unknown interpolation {mode!r}; choose one of {MODES}")


def path_frames(waypoints: Sequence[np.ndarray], mode: str = "linear") -> np.ndarray:
    """A glide: frame i of the output sits at path position `i / (L - 1) * (K - 1)` between
    the K waypoints, all `[L, D]` (already resampled to a common length). Returns `[L, D]`;
    the first frame is waypoint 0's first frame, the last is waypoint K-1's last frame."""
    k = len(waypoints)
    if k < 2:
        raise ValueError("a path needs two or more waypoints")
    length = waypoints[0].shape[0]
    if any(w.shape != waypoints[0].shape for w in waypoints):
        raise ValueError("waypoints must share one shape [L, D]; resample them first")
    pos = np.linspace(0.0, k - 1.0, length) if length > 1 else np.zeros(1)
    seg = np.minimum(np.floor(pos).astype(int), k - 2)
    frac = pos - seg
    out = np.empty_like(waypoints[0])
    for s in range(k - 1):
        rows = np.nonzero(seg == s)[0]
        if rows.size:
            a, b = waypoints[s][rows], waypoints[s + 1][rows]
            out[rows] = interpolate(a, b, frac[rows, None], mode)
    return out
