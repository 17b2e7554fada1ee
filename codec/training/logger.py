"""TensorBoard output of a training run (rank 0 only): scalars, audio and spectrogram images.

Spectrograms are written as grayscale image tensors (no plotting library in `codec/`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from codec.metrics import log_mel
from codec.models.base import SAMPLE_RATE


class TrainLogger:
    """A `SummaryWriter` that is a no-op on ranks other than 0.

    Args:
        writer_dir: the event folder (`training.writer_dir`).
        enabled: False on non-main ranks.
    """

    def __init__(self, writer_dir: str | Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            Path(writer_dir).mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(log_dir=str(writer_dir))

    def scalars(self, values: dict[str, float], step: int) -> None:
        """One scalar per namespaced key (`"loss/mel"`, `"eval/si_sdr"`, ...)."""
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def audio(self, tag: str, wav: torch.Tensor, step: int, sr: int = SAMPLE_RATE) -> None:
        """A clip `[N]`, `[1, N]` or `[1, 1, N]`, clipped to [-1, 1]."""
        if self.writer is None:
            return
        x = wav.detach().float().cpu().reshape(-1).clamp(-1, 1)
        self.writer.add_audio(tag, x, step, sample_rate=sr)

    def spectrograms(self, tag: str, clips: dict[str, torch.Tensor], step: int) -> None:
        """One log-mel image per named clip (e.g. original, w3, w6, w10) under `tag/<name>`,
        on one shared brightness scale so the panels compare."""
        if self.writer is None or not clips:
            return
        for name, image in spectrogram_images(clips).items():
            self.writer.add_image(f"{tag}/{name}", image, step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def spectrogram_images(clips: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Log-mel spectrograms (80 bins, hop 256) of named clips as images `[1, 80, frames]` in
    [0, 1] (low frequencies at the bottom), on one scale shared by all clips."""
    mels = {k: log_mel(v.detach().float().cpu().reshape(-1)) for k, v in clips.items()}
    lo = min(float(m.min()) for m in mels.values())
    hi = max(float(m.max()) for m in mels.values())
    scale = max(hi - lo, 1e-6)
    return {k: ((m - lo) / scale).flip(0)[None] for k, m in mels.items()}
