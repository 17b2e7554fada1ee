"""Audio file I/O: every clip the project reads becomes mono float32 `[1, N]` at 24 kHz.

Reading uses soundfile (torchaudio >= 2.9 has no file I/O); resampling uses
`torchaudio.functional.resample`. Every failure is an `AudioError` naming the file and the problem.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class AudioError(ValueError):
    """A clip that cannot be used: missing, unreadable, empty, non-finite or too long."""


def _header(path: Path) -> tuple[int, int]:
    """(sample rate, frames) from the file header; nothing is decoded."""
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for non-audio data
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    if info.samplerate <= 0:
        raise AudioError(f"{path}: header has an invalid sample rate {info.samplerate}")
    return int(info.samplerate), max(int(info.frames), 0)


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration in seconds from the file header alone (nothing is decoded).

    Raises:
        AudioError: the file is missing or its header is not a readable audio header.
    """
    sr, frames = _header(Path(path))
    return frames / sr


def load_audio(
    path: str | os.PathLike[str],
    target_sr: int = SAMPLE_RATE,
    max_seconds: float = 600.0,
    *,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> torch.Tensor:
    """Read an audio file as mono float32 `[1, N]` at `target_sr`.

    Channels are mixed down by their mean. The header is checked against `max_seconds` before
    anything is decoded, and at most `max_seconds` are ever decoded (a header that under-reports
    its length cannot smuggle in more). A header that over-reports (a truncated file) is fine: what
    decodes is used, but zero decoded samples is an error. Silent clips are valid.

    Args:
        path: wav, flac, ogg, mp3 or anything else libsndfile reads.
        target_sr: output sample rate.
        max_seconds: refuse files whose header says they are longer than this.
        offset_seconds: start reading here (for reading one crop of a long file).
        duration_seconds: read at most this much (None: to the end).

    Returns:
        `[1, N]` float32 tensor.

    Raises:
        AudioError: missing file, non-audio data, over the cap, no samples, NaN/Inf samples.
    """
    path = Path(path)
    sr, header_frames = _header(path)
    if header_frames / sr > max_seconds:
        raise AudioError(
            f"{path}: {header_frames / sr:.1f} s is longer than the {max_seconds:g} s cap"
        )
    start = max(0, int(round(offset_seconds * sr)))
    cap_frames = int(math.floor(max_seconds * sr))
    frames = cap_frames + 1 - start
    if duration_seconds is not None:
        frames = min(frames, int(math.ceil(duration_seconds * sr)))
    if frames <= 0:
        raise AudioError(f"{path}: offset {offset_seconds:g} s is past the {max_seconds:g} s cap")
    try:
        data, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: could not decode audio ({exc})") from exc
    if start + data.shape[0] > cap_frames:
        raise AudioError(f"{path}: decodes to more than the {max_seconds:g} s cap")
    return ensure_mono_24k(data, sr, target_sr=target_sr, name=str(path), channels_first=False)


def ensure_mono_24k(
    wav: torch.Tensor | np.ndarray,
    sr: int,
    *,
    target_sr: int = SAMPLE_RATE,
    name: str = "audio array",
    channels_first: bool | None = None,
) -> torch.Tensor:
    """Turn an in-memory clip (e.g. a microphone recording `(sr, array)`) into `[1, N]` float32.

    Args:
        wav: `[T]`, `[C, T]` or `[T, C]`, or `[1, C, T]`; float, or integer PCM (int16, int32,
            uint8) which is scaled to [-1, 1].
        sr: its sample rate.
        target_sr: output sample rate.
        name: how errors refer to the clip.
        channels_first: layout of a 2-D input; None infers it (the shorter axis is channels,
            which matches both torch `[C, T]` and the `[T, C]` arrays Gradio returns).

    Returns:
        `[1, N]` float32 tensor at `target_sr`, channels mixed down by their mean.

    Raises:
        AudioError: no samples, NaN/Inf samples, an unsupported dtype or shape, or a bad rate.
    """
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or sr <= 0:
        raise AudioError(f"{name}: invalid sample rate {sr!r}")
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    x = _to_float32(x, name)
    if x.ndim == 3 and x.shape[0] == 1:
        x, channels_first = x[0], True
    if x.ndim == 1:
        x = x[None, :]
    elif x.ndim == 2:
        if channels_first is None:
            channels_first = x.shape[0] <= x.shape[1]
        if not channels_first:
            x = x.T
    else:
        raise AudioError(f"{name}: expected [T], [C, T] or [T, C] audio, got shape {x.shape}")
    if x.shape[1] == 0 or x.shape[0] == 0:
        raise AudioError(f"{name}: contains 0 samples")
    if not np.isfinite(x).all():
        raise AudioError(f"{name}: contains NaN or Inf samples")
    mono = torch.from_numpy(np.ascontiguousarray(x.mean(axis=0, dtype=np.float32)))[None, :]
    if int(sr) != target_sr:
        mono = _resample(mono, int(sr), target_sr, name)
    if not torch.isfinite(mono).all():  # finite but huge samples overflow the mix or resampler
        raise AudioError(f"{name}: sample values too large (up to {np.abs(x).max():.3g})")
    return mono.contiguous()


# torchaudio's sinc kernel holds (sr / g) x (target / g) taps (g = gcd), e.g. 8000 x 24000
# floats (3 GB, 12 s) for a 7999 Hz file. Above this many, the nearest ratio with small terms is
# used instead (relative pitch/length error ~1e-7, inaudible).
_MAX_RESAMPLE_TAPS = 1 << 22


def _resample(x: torch.Tensor, sr: int, target_sr: int, name: str) -> torch.Tensor:
    """`AF.resample` with a bounded kernel size (see `_MAX_RESAMPLE_TAPS`)."""
    ratio = Fraction(target_sr, sr)
    if ratio.numerator * ratio.denominator > _MAX_RESAMPLE_TAPS:
        ratio = ratio.limit_denominator(max(1, math.isqrt(int(_MAX_RESAMPLE_TAPS / ratio))))
        if ratio.numerator == 0:
            raise AudioError(f"{name}: sample rate {sr} is too high to resample to {target_sr}")
    return AF.resample(x, ratio.denominator, ratio.numerator)


def _to_float32(x: np.ndarray, name: str) -> np.ndarray:
    """Integer PCM to [-1, 1] floats; floats to float32."""
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.signedinteger):
        return x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise AudioError(f"{name}: unsupported sample type {x.dtype}")


def save_audio(path: str | os.PathLike[str], wav: torch.Tensor, sr: int = SAMPLE_RATE) -> Path:
    """Write a 16-bit PCM WAV atomically (a temporary file in the same folder, then os.replace).

    Args:
        path: destination; its folder is created if needed.
        wav: `[T]`, `[C, T]` or `[1, C, T]`; values are clipped to [-1, 1].
        sr: sample rate.

    Returns:
        The written path.

    Raises:
        AudioError: empty, non-finite or badly shaped audio.
    """
    path = Path(path)
    x = torch.as_tensor(wav).detach().cpu().float()
    if x.dim() == 3 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 1:
        x = x[None, :]
    if x.dim() != 2 or x.shape[-1] == 0:
        raise AudioError(f"{path}: cannot save audio of shape {tuple(wav.shape)}")
    if not torch.isfinite(x).all():
        raise AudioError(f"{path}: refusing to save NaN or Inf samples")
    data = x.clamp(-1.0, 1.0).T.numpy()  # [T, C] as soundfile wants
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, data, sr, subtype="PCM_16", format="WAV")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
