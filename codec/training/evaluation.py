"""Held-out evaluation during training: mel distance and SI-SDR per window size, audio examples.

Stage 1 (the autoencoder without quantizer) is scored through the training forward
(`stage=1`); stage 2 scores the real inference path, `Codec.reconstruct`
(encode -> quantize -> decode). Keys: `eval/mel_distance`, `eval/si_sdr` (means over the
windows; the mean mel distance selects `best/`), and `eval/mel_distance_w3`, `eval/si_sdr_w3`, ... .
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from codec.base import Codec
from codec.metrics import mel_distance, si_sdr


@dataclass
class EvalResult:
    """Scalars by namespaced key and the example clips to log (name -> `[N]`), per clip index."""

    scalars: dict[str, float]
    examples: list[dict[str, torch.Tensor]] = field(default_factory=list)


def eval_windows(model: Codec, stage: int, windows: list[int]) -> list[int | None]:
    """The windows to evaluate: the configured list for ALMTokenizer's stage 2; none for stage 1
    (the autoencoder has no window) and for codecs without a window (EnCodec)."""
    if getattr(model, "name", "") != "almtokenizer" or stage == 1:
        return [None]
    return list(windows)


def _tag(window: int | None) -> str:
    return "recon" if window is None else f"w{window}"


@torch.no_grad()
def reconstruct(model: Codec, wav: torch.Tensor, window: int | None, stage: int) -> torch.Tensor:
    """The evaluated reconstruction `[B, 1, N]` of `wav` `[B, 1, N]`."""
    if stage == 1:
        return model(wav, window=window, stage=1).recon
    return model.reconstruct(wav, window)


@torch.no_grad()
def evaluate(
    model: Codec,
    batches: Iterable[torch.Tensor],
    stage: int,
    windows: list[int],
    device: torch.device,
    max_batches: int | None = None,
    audio_clips: int = 0,
    amp: bool = False,
) -> EvalResult:
    """Score `model` on held-out batches `[B, 1, N]`; restores its train/eval mode after.

    Random number generators are forked, so evaluating never changes the training trajectory.
    """
    was_training = model.training
    model.eval()
    wins = eval_windows(model, stage, windows)
    sums = {w: {"mel": 0.0, "sdr": 0.0} for w in wins}
    clips = 0
    examples: list[dict[str, torch.Tensor]] = []
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if amp and device.type == "cuda"
        else contextlib.nullcontext()
    )
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), autocast:
            for i, wav in enumerate(batches):
                if max_batches is not None and i >= max_batches:
                    break
                wav = wav.to(device)
                b = wav.shape[0]
                recons = {}
                for w in wins:
                    rec = reconstruct(model, wav, w, stage).float()[..., : wav.shape[-1]]
                    recons[w] = rec
                    sums[w]["mel"] += float(mel_distance(rec, wav)) * b
                    sums[w]["sdr"] += float(si_sdr(rec, wav).mean()) * b
                clips += b
                for j in range(min(b, audio_clips - len(examples))):
                    ex = {"original": wav[j, 0].float().cpu()}
                    ex.update({_tag(w): r[j, 0].cpu() for w, r in recons.items()})
                    examples.append(ex)
    finally:
        model.train(was_training)
    if clips == 0:
        return EvalResult(scalars={})
    scalars: dict[str, float] = {}
    for w in wins:
        if len(wins) > 1:
            scalars[f"eval/mel_distance_{_tag(w)}"] = sums[w]["mel"] / clips
            scalars[f"eval/si_sdr_{_tag(w)}"] = sums[w]["sdr"] / clips
    scalars["eval/mel_distance"] = sum(s["mel"] for s in sums.values()) / (clips * len(wins))
    scalars["eval/si_sdr"] = sum(s["sdr"] for s in sums.values()) / (clips * len(wins))
    return EvalResult(scalars=scalars, examples=examples)
