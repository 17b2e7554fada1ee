"""Held-out evaluation during training: mel distance, SI-SDR and pitch kept per window size,
audio examples.

Stage 1 (the autoencoder without quantizer) is scored through the training forward
(`stage=1`); stage 2 scores the real inference path, `Codec.reconstruct`
(encode -> quantize -> decode). Keys: `eval/mel_distance`, `eval/si_sdr`, `eval/pitch_kept`
(share of held-out clips with a measurable pitch whose reconstruction keeps it within a quarter
tone, `codec.metrics.pitch_matches`), means over the windows, and per window
`eval/mel_distance_w3`, `eval/si_sdr_w3`, `eval/pitch_kept_w3`, ... . For a codec with a
frame front end (`Codec.relative_frame_error`, ALMTokenizer) also `eval/latent_rel[_wN]`:
||z_hat - z||^2 / ||z||^2 of the decoded frames in standardised units.

`eval/score` selects `best/` (lower is better): mel distance + (1 - pitch kept), so one unit
of mel distance weighs as much as every pitch; a model that loses pitches cannot win on a
smooth spectrum alone. Without pitched clips it is the mel distance.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from codec.metrics import estimate_f0, mel_distance, pitch_matches, si_sdr
from codec.models.base import Codec


@dataclass
class EvalResult:
    """Scalars by namespaced key and the example clips to log (name -> `[N]`), per clip index."""

    scalars: dict[str, float]
    examples: list[dict[str, torch.Tensor]] = field(default_factory=list)


def eval_windows(model: Codec, stage: int, windows: list[int]) -> list[float | None]:
    """The settings to evaluate: the configured windows in stages 2 and 3 of a codec whose
    setting is a window (ALMTokenizer); every bandwidth in the decoder stage (3) of a codec
    whose setting is a bandwidth (EnCodec); else only the codec's current setting (None)."""
    setting = model.setting()
    if stage == 1:
        return [None]
    if setting.kind == "window":
        return list(windows)
    if setting.kind == "bandwidth" and stage == 3:
        return list(setting.choices)
    return [None]


def _tag(setting: float | None, kind: str = "window") -> str:
    if setting is None:
        return "recon"
    return f"w{setting}" if kind == "window" else f"{setting:g}kbps"


@torch.no_grad()
def reconstruct(model: Codec, wav: torch.Tensor, setting: float | None, stage: int) -> torch.Tensor:
    """The evaluated reconstruction `[B, 1, N]` of `wav` `[B, 1, N]` at a window or bandwidth
    (`setting`; None: the codec's current one)."""
    if stage == 1:
        return model(wav, window=None, stage=1).recon
    if setting is None or model.setting().kind == "window":
        return model.reconstruct(wav, None if setting is None else int(setting))
    with model.use_setting(setting) as window:
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
    kind = model.setting().kind
    sums = {w: {"mel": 0.0, "sdr": 0.0, "pitch": 0.0, "latent": 0.0} for w in wins}
    with_frames = False  # set once the codec reports a frame error (Codec.relative_frame_error)
    clips = pitched = 0
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
                if isinstance(wav, tuple | list):  # (wav, frames) from a latent cache
                    wav = wav[0]
                wav = wav.to(device)
                b = wav.shape[0]
                has_pitch = [not math.isnan(estimate_f0(wav[j, 0].float().cpu())) for j in range(b)]
                pitched += sum(has_pitch)
                recons = {}
                for w in wins:
                    rec = reconstruct(model, wav, w, stage).float()[..., : wav.shape[-1]]
                    recons[w] = rec
                    sums[w]["mel"] += float(mel_distance(rec, wav)) * b
                    sums[w]["sdr"] += float(si_sdr(rec, wav).mean()) * b
                    sums[w]["pitch"] += sum(
                        pitch_matches(rec[j, 0].cpu(), wav[j, 0].float().cpu())
                        for j in range(b)
                        if has_pitch[j]
                    )
                    err = model.relative_frame_error(wav, w) if stage in (2, 3) else None
                    if err is not None:
                        sums[w]["latent"] += float(err.sum())
                        with_frames = True
                clips += b
                for j in range(min(b, audio_clips - len(examples))):
                    ex = {"original": wav[j, 0].float().cpu()}
                    ex.update({_tag(w, kind): r[j, 0].cpu() for w, r in recons.items()})
                    examples.append(ex)
    finally:
        model.train(was_training)
    if clips == 0:
        return EvalResult(scalars={})
    keys = [("mel", "mel_distance", clips), ("sdr", "si_sdr", clips)]
    if pitched:
        keys.append(("pitch", "pitch_kept", pitched))
    if with_frames:
        keys.append(("latent", "latent_rel", clips))
    scalars: dict[str, float] = {}
    for short, name, count in keys:
        for w in wins:
            if len(wins) > 1:
                scalars[f"eval/{name}_{_tag(w, kind)}"] = sums[w][short] / count
        scalars[f"eval/{name}"] = sum(s[short] for s in sums.values()) / (count * len(wins))
    scalars["eval/score"] = scalars["eval/mel_distance"] + (
        1.0 - scalars["eval/pitch_kept"] if pitched else 0.0
    )
    return EvalResult(scalars=scalars, examples=examples)
