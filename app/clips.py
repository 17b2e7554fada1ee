"""Clips the app works on: loading uploads/recordings/examples, hashing, writing outputs.

A `Clip` is a mono 24 kHz waveform `[1, N]` plus a content hash (`key`) that keys every cache
(reconstructions, metrics), so the same audio reached twice (re-upload, example re-picked)
reuses earlier work.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.errors import UserInputError
from codec.audio import load_audio, save_audio
from codec.models.base import SAMPLE_RATE


@dataclass(frozen=True)
class Clip:
    """A loaded clip.

    Attributes:
        wav: mono waveform `[1, N]` (float32, 24 kHz).
        name: what the UI calls it (file name or example label).
        key: sha1 of the samples (first 16 hex chars).
    """

    wav: torch.Tensor
    name: str
    key: str

    @property
    def num_samples(self) -> int:
        return int(self.wav.shape[-1])

    @property
    def seconds(self) -> float:
        return self.num_samples / SAMPLE_RATE


def clip_hash(wav: torch.Tensor) -> str:
    """Content hash of a waveform (its float32 bytes)."""
    data = wav.detach().cpu().float().contiguous().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


def audio_path(value: object) -> str | None:
    """The file path inside a Gradio audio/file value (str, Path, dict or FileData-like)."""
    if value is None or value == "":
        return None
    if isinstance(value, str | os.PathLike):
        return str(value)
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    path = getattr(value, "path", None) or getattr(value, "name", None)
    return str(path) if path else None


def load_clip(value: object, max_seconds: float, name: str | None = None) -> Clip:
    """Load an uploaded/recorded/example file as a `Clip`.

    Raises:
        UserInputError: no clip given, or a clip of (almost) no samples.
        AudioError: not audio, unreadable, over `max_seconds`.
    """
    path = audio_path(value)
    if path is None:
        raise UserInputError(
            "No clip: upload or record audio, or pick an example from the list first."
        )
    wav = load_audio(path, SAMPLE_RATE, max_seconds=max_seconds)
    label = name or Path(path).name
    if wav.shape[-1] < SAMPLE_RATE // 20:
        raise UserInputError(
            f"'{label}' is too short ({wav.shape[-1] / SAMPLE_RATE * 1000:.0f} ms); "
            "the codecs need at least 50 ms of audio."
        )
    return Clip(wav, label, clip_hash(wav))


def write_wav(folder: Path, stem: str, wav: torch.Tensor) -> str:
    """Write `wav` (`[N]`, `[1, N]` or `[1, 1, N]`) as 16-bit PCM `folder/stem.wav`; its path."""
    x = torch.as_tensor(wav).detach().cpu().float().reshape(1, -1)
    x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return str(save_audio(Path(folder) / f"{stem}.wav", x, SAMPLE_RATE))


def concat_with_gaps(wavs: list[torch.Tensor], gap_seconds: float = 0.15) -> torch.Tensor:
    """Join clips `[1, N_i]` with short silences, for playing N steps with one player."""
    gap = torch.zeros(1, int(gap_seconds * SAMPLE_RATE))
    parts: list[torch.Tensor] = []
    for i, w in enumerate(wavs):
        if i:
            parts.append(gap)
        parts.append(torch.as_tensor(w).detach().cpu().float().reshape(1, -1))
    return torch.cat(parts, dim=-1) if parts else torch.zeros(1, 1)


def peak(wav: torch.Tensor) -> float:
    """Peak absolute sample (for the UI's level read-out)."""
    return float(np.abs(wav.detach().cpu().numpy()).max()) if wav.numel() else 0.0
