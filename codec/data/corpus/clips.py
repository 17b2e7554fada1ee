"""From decoded audio to corpus clips: 24 kHz mono, silence dropped, at most 10 s, hashed, FLAC.

    decode (soundfile; bytes or path) -> mono mix -> resample_poly to 24 kHz
      -> frame RMS (20 ms) -> sounding regions (gaps under 0.5 s bridged, 50 ms margins)
      -> regions cut into equal pieces of at most MAX_CLIP_S -> PCM16 -> sha1 -> FLAC

Everything is a pure function of the input samples, so the same file always gives the same clips
and the same hashes; the hash of the PCM16 samples names the file (content addressing), which
makes de-duplication and rebuilds trivial.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 24000
MAX_CLIP_S = 10.0
MIN_CLIP_S = 0.2
FRAME_S = 0.02
SILENCE_DB = -60.0  # a frame quieter than this (dBFS RMS) is silent...
RELATIVE_DB = -50.0  # ...as is one this far below the loudest frame of the file
MAX_GAP_S = 0.5  # silences shorter than this stay inside a clip
MARGIN_S = 0.05
MAX_DECODE_S = 3600.0


class DecodeError(ValueError):
    """Audio that cannot be used (unreadable, empty, non-finite, absurd header)."""


def decode(source: str | Path | bytes, name: str = "") -> tuple[np.ndarray, int]:
    """Decode a file (or its bytes) with soundfile; returns mono float32 `[N]` and its rate.

    Raises:
        DecodeError: libsndfile cannot read it, the header is absurd, or no finite samples.
    """
    label = name or str(source)
    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with sf.SoundFile(handle) as f:
            rate, frames = int(f.samplerate), int(f.frames)
            if rate <= 0 or rate > 384_000:
                raise DecodeError(f"{label}: header has an invalid sample rate {rate}")
            if frames > MAX_DECODE_S * rate:
                raise DecodeError(f"{label}: header says {frames / rate:.0f} s, over the cap")
            x = f.read(dtype="float32", always_2d=True)
    except DecodeError:
        raise
    except Exception as exc:  # libsndfile raises several types for broken data
        raise DecodeError(f"{label}: not readable audio ({type(exc).__name__}: {exc})") from exc
    if x.size == 0:
        raise DecodeError(f"{label}: no samples")
    mono = x.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DecodeError(f"{label}: non-finite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def to_24k(x: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling to SAMPLE_RATE (deterministic, float32 `[N]`)."""
    if rate == SAMPLE_RATE:
        return x.astype(np.float32, copy=False)
    ratio = Fraction(SAMPLE_RATE, rate)
    y = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator)
    return y.astype(np.float32)


def sounding_regions(x: np.ndarray, sr: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """Sample ranges [start, end) that are not silent (see the module docstring)."""
    hop = int(FRAME_S * sr)
    n = len(x) // hop
    if n == 0:
        return []
    frames = x[: n * hop].astype(np.float64).reshape(n, hop)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    threshold = max(SILENCE_DB, float(db.max()) + RELATIVE_DB)
    loud = np.flatnonzero(db > threshold)
    if loud.size == 0:
        return []
    regions: list[list[int]] = [[int(loud[0]), int(loud[0]) + 1]]
    max_gap = int(MAX_GAP_S / FRAME_S)
    for i in loud[1:]:
        if i - regions[-1][1] <= max_gap:
            regions[-1][1] = int(i) + 1
        else:
            regions.append([int(i), int(i) + 1])
    margin = int(MARGIN_S * sr)
    return [(max(a * hop - margin, 0), min(b * hop + margin, len(x))) for a, b in regions]


def cut(x: np.ndarray, sr: int = SAMPLE_RATE) -> list[tuple[int, np.ndarray]]:
    """(start sample, clip) pairs: sounding regions cut into equal pieces of <= MAX_CLIP_S."""
    out = []
    limit = int(MAX_CLIP_S * sr)
    for a, b in sounding_regions(x, sr):
        pieces = math.ceil((b - a) / limit)
        bounds = np.linspace(a, b, pieces + 1).round().astype(int)
        for s, e in zip(bounds[:-1], bounds[1:]):
            if e - s >= MIN_CLIP_S * sr:
                out.append((int(s), x[s:e]))
    return out


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float `[N]` to int16, clipped at full scale."""
    return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype(np.int16)


@dataclass(frozen=True)
class Clip:
    """One corpus clip: its PCM16 samples, their sha1 and where it starts in the source."""

    pcm: np.ndarray
    sha1: str
    start_s: float

    @property
    def duration(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    @property
    def relpath(self) -> str:
        """Content-addressed path inside the corpus: audio/ab/abcdef0123456789.flac."""
        return f"audio/{self.sha1[:2]}/{self.sha1[:16]}.flac"


def make_clips(x: np.ndarray, rate: int, whole: bool = False) -> list[Clip]:
    """Clips of one decoded source; `whole` keeps one clip (a note) trimmed of silence only."""
    y = to_24k(x, rate)
    if whole:
        regions = sounding_regions(y)
        pieces = []
        if regions:
            a, b = regions[0][0], min(regions[-1][1], regions[0][0] + int(MAX_CLIP_S * SAMPLE_RATE))
            if b - a >= MIN_CLIP_S * SAMPLE_RATE:
                pieces = [(a, y[a:b])]
    else:
        pieces = cut(y)
    clips = []
    for start, piece in pieces:
        pcm = to_pcm16(piece)
        clips.append(Clip(pcm, hashlib.sha1(pcm.tobytes()).hexdigest(), start / SAMPLE_RATE))
    return clips


def write_clip(root: Path, clip: Clip) -> Path:
    """Write the clip as 16-bit FLAC under `root` (atomically; an existing file is kept)."""
    path = root / clip.relpath
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(tmp, clip.pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)
    return path
