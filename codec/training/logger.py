"""TensorBoard output of a training run (rank 0 only): scalars, audio and spectrogram figures.

matplotlib is used here, with the Agg backend, only to render the spectrogram figure that
TensorBoard shows; nothing in `codec/` models plots.
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
        """One figure with a log-mel panel per named clip (e.g. original, w=3, w=6, w=10)."""
        if self.writer is None or not clips:
            return
        self.writer.add_figure(tag, spectrogram_figure(clips), step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def spectrogram_figure(clips: dict[str, torch.Tensor]):  # -> matplotlib.figure.Figure
    """Stacked log-mel spectrograms (80 bins, hop 256) of named clips, sharing one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mels = {k: log_mel(v.detach().float().cpu().reshape(-1)) for k, v in clips.items()}
    vmin = min(float(m.min()) for m in mels.values())
    vmax = max(float(m.max()) for m in mels.values())
    fig, axes = plt.subplots(len(mels), 1, figsize=(8, 2.0 * len(mels)), squeeze=False)
    for ax, (name, mel) in zip(axes[:, 0], mels.items()):
        ax.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1, 0].set_xlabel("frame (hop 256)")
    fig.tight_layout()
    return fig
