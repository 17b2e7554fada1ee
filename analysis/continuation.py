"""Continuation: a clip's first seconds as codes, continued by the codec's token LM, decoded.

    lm = load_codec_lm("checkpoints/lm_almtokenizer_w3", codec)    # refuses another tokenizer
    out = continue_clip(codec, lm, clip, prompt_seconds=1.0, seconds=3.0, top_k=50, seed=0)
    out.wav            # [1, 1, N]: the codec's decoding of prompt + continuation codes
    out.boundary_sample, out.boundary_frame   # where the continuation starts
    out.continuation   # [1, 1, N - boundary_sample]: the generated part only

    clip [1, 1, N] -> crop to P whole token frames -> codec.encode -> prompt codes [n_q, P]
      -> codec.lm.generate (+ G frames) -> codes [n_q, P + G] -> codec.decode_codes -> wav

Only the prompt's audio is encoded (a crop of exactly P token frames), so no sample after the
boundary reaches the prompt's codes through an encoder that looks ahead. The codec runs at the
LM's setting (its window, or its bandwidth under `Codec.use_setting`), read from the LM's
tokenizer record; a codec other than that tokenizer is refused with the loader's
`TokenizerMismatchError`. Everything goes through the Codec interface; the model math is
`codec.lm`'s. Bad inputs raise `ValueError` naming the problem.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from codec.lm import TokenizerRecord, TokenLM, generate, load_lm
from codec.lm.loaders import read_lm_config
from codec.models.base import Codec

log = logging.getLogger(__name__)

MAX_TEMPERATURE = 10.0
DEFAULT_MAX_SECONDS = 30.0  # the longest continuation a call may ask for
SILENCE_PEAK = 1e-4  # -80 dBFS: a prompt this quiet holds nothing to continue


class ClipError(ValueError):
    """The clip cannot be continued (not one mono waveform, NaN, shorter than the prompt, a
    silent prompt); settings out of range raise a plain `ValueError`."""


def codec_device(codec: Codec) -> torch.device:
    """Where the codec's weights live (CPU for a codec without parameters)."""
    return next(codec.parameters(), torch.empty(0)).device


@dataclass(frozen=True)
class ContinuationSettings:
    """What a continuation was asked for (seconds as asked; frames as used)."""

    prompt_seconds: float
    seconds: float
    temperature: float
    top_k: int | None
    seed: int
    window: int | None
    bandwidth: float | None
    frame_rate: float
    prompt_frames: int
    generated_frames: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Continuation:
    """A decoded continuation.

    Attributes:
        wav: the codec's decoding of prompt + continuation codes, `[1, 1, N]` (float, CPU).
        boundary_sample: first sample of the continuation (the prompt is `wav[..., :b]`).
        boundary_frame: first token frame of the continuation (= the prompt's frames P).
        codes: int64 codes `[n_q, P + G]` (CPU); `codes[:, :P]` are the prompt's.
        settings: what was asked and used.
        sample_rate: of `wav`.
    """

    wav: torch.Tensor
    boundary_sample: int
    boundary_frame: int
    codes: torch.Tensor
    settings: ContinuationSettings
    sample_rate: int

    @property
    def prompt(self) -> torch.Tensor:
        """The decoded prompt part `[1, 1, boundary_sample]`."""
        return self.wav[..., : self.boundary_sample]

    @property
    def continuation(self) -> torch.Tensor:
        """The generated part only `[1, 1, N - boundary_sample]`."""
        return self.wav[..., self.boundary_sample :]

    @property
    def seconds(self) -> float:
        return self.wav.shape[-1] / self.sample_rate


def lm_setting(codec: Codec, record: TokenizerRecord) -> float | None:
    """The value of `codec.setting()` the LM's tokens were made at: its window, or its
    bandwidth when the codec offers it (None: nothing to set)."""
    spec = codec.setting()
    if spec.kind == "window" and record.window is not None:
        return float(record.window)
    if spec.kind == "bandwidth" and record.bandwidth is not None:
        return next((c for c in spec.choices if math.isclose(record.bandwidth, c)), None)
    return None


@contextlib.contextmanager
def at_lm_setting(codec: Codec, record: TokenizerRecord) -> Iterator[int | None]:
    """Run a block with `codec` at the LM's setting; yields the `window` for encode/decode.

    Raises:
        TokenizerMismatchError: the codec (at that setting) is not the LM's tokenizer.
        ValueError: a reference codec (no codes to continue).
    """
    if not codec.has_latents:
        raise ValueError(f"{codec.name} is a reference codec: it has no codes to continue")
    value = lm_setting(codec, record)
    ctx = codec.use_setting(value) if value is not None else contextlib.nullcontext(None)
    with ctx as window:
        record.check_codec(codec, window)
        yield window


def load_codec_lm(path: str | Path, codec: Codec, device: str | torch.device = "cpu") -> TokenLM:
    """The token LM at `path`, refused unless `codec` (at the LM's window or bandwidth) is the
    tokenizer it was trained on.

    Raises:
        CheckpointError: a missing or damaged LM folder.
        TokenizerMismatchError: another codec, checkpoint, window, n_q, K or frame rate.
    """
    record = TokenizerRecord.from_dict(read_lm_config(path)["tokenizer"])
    with at_lm_setting(codec, record) as window:
        return load_lm(path, codec=codec, window=window, device=device)


def _check_clip(clip: object) -> torch.Tensor:
    if not isinstance(clip, torch.Tensor):
        raise ClipError(f"clip must be a torch.Tensor [1, 1, N], got {type(clip).__name__}")
    if not clip.dtype.is_floating_point:
        raise ClipError(f"clip must be a float waveform, got {clip.dtype}")
    if clip.dim() > 3 or clip.numel() != clip.shape[-1]:
        raise ClipError(f"clip must be one mono waveform [1, 1, N], got {tuple(clip.shape)}")
    if not bool(torch.isfinite(clip).all()):
        raise ClipError("clip holds NaN or Inf samples")
    return clip.reshape(1, 1, -1).float()


def _check_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_settings(
    lm: TokenLM,
    prompt_seconds: float,
    seconds: float,
    temperature: float,
    top_k: int | None,
    seed: int,
    max_seconds: float,
) -> None:
    """Refuse settings out of range, each with a message naming it."""
    prompt_seconds = _check_number(prompt_seconds, "prompt_seconds")
    seconds, max_seconds = (
        _check_number(seconds, "seconds"),
        _check_number(max_seconds, "max_seconds"),
    )
    if prompt_seconds <= 0:
        raise ValueError(f"prompt_seconds must be > 0, got {prompt_seconds:g}")
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds:g}")
    if not 0 < seconds <= max_seconds:
        raise ValueError(f"seconds (to generate) must be in (0, {max_seconds:g}], got {seconds:g}")
    t = _check_number(temperature, "temperature")
    if not 0 < t <= MAX_TEMPERATURE:
        raise ValueError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got {t:g}")
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= lm.codebook_size
    ):
        raise ValueError(
            f"top_k must be an int in [1, {lm.codebook_size}] (the codebook size), got {top_k!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def _frames(
    lm: TokenLM, rate: float, n: int, sr: int, prompt_s: float, gen_s: float
) -> tuple[int, int, float]:
    """(prompt frames P, generated frames G, samples per frame) for a clip of `n` samples."""
    frame_s = 1.0 / rate
    if prompt_s > n / sr + 1e-9:
        raise ClipError(f"prompt_seconds {prompt_s:g} is longer than the clip ({n / sr:.3f} s)")
    p = math.floor(prompt_s * rate + 1e-6)
    if p < 1:
        raise ValueError(
            f"the prompt ({prompt_s:g} s) is shorter than one token frame "
            f"({frame_s:.3f} s at {rate:g} tokens/s)"
        )
    g = max(1, math.ceil(gen_s * rate - 1e-6))
    if p + g > lm.context_frames:
        raise ValueError(
            f"prompt + continuation = {p + g} token frames ({(p + g) * frame_s:.2f} s) exceeds "
            f"the LM's context of {lm.context_frames} frames ({lm.context_frames * frame_s:.2f} "
            "s): ask for fewer seconds"
        )
    return p, g, sr / rate


@torch.no_grad()
def continue_clip(
    codec: Codec,
    lm: TokenLM,
    clip: torch.Tensor,
    prompt_seconds: float = 1.0,
    seconds: float = 3.0,
    temperature: float = 1.0,
    top_k: int | None = 50,
    seed: int = 0,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Continuation:
    """Continue the first `prompt_seconds` of `clip` by `seconds` with `lm`, decoded by `codec`.

    Args:
        codec: a codec with codes (`has_latents`), any device.
        lm: its token LM (`load_codec_lm`); its tokenizer record must name `codec`.
        clip: the waveform `[1, 1, N]` at `codec.sample_rate`.
        prompt_seconds: the prompt, rounded down to whole token frames (>= 1 frame).
        seconds: to generate, rounded up to whole token frames; at most `max_seconds`.
        temperature: in (0, 10]; top_k: None (every code) or 1 ... K; seed: >= 0.

    Returns:
        `Continuation`: `wav` of (P + G) token frames, the boundary at P frames.

    Raises:
        ClipError: a clip that cannot be continued (not `[1, 1, N]`, NaN or Inf, shorter
            than `prompt_seconds`, a silent prompt); a `ValueError`.
        ValueError: a setting out of range, a prompt shorter than one token frame, more frames
            than the LM's context (the message names it).
        TokenizerMismatchError: `lm` was trained on another codec's tokens.
    """
    wav = _check_clip(clip)
    check_settings(lm, prompt_seconds, seconds, temperature, top_k, seed, max_seconds)
    if lm.tokenizer is None:
        raise ValueError("the LM has no tokenizer record: load it with load_codec_lm")
    record, sr = lm.tokenizer, codec.sample_rate
    with at_lm_setting(codec, record) as window:
        rate = float(codec.frame_rate(window))
        p, g, spf = _frames(lm, rate, wav.shape[-1], sr, float(prompt_seconds), float(seconds))
        boundary = round(p * spf)
        head = wav[..., :boundary]
        peak = float(head.abs().max())
        if peak < SILENCE_PEAK:
            raise ClipError(
                f"the prompt (first {boundary / sr:.3f} s of the clip) is silent "
                f"(peak {peak:.1e}): nothing to continue"
            )
        device = codec_device(codec)
        prompt = codec.encode(head.to(device), window).codes[0, :, :p].cpu()
    if prompt.shape[-1] != p:
        raise RuntimeError(f"{codec.name} encoded {p} frames' audio into {prompt.shape[-1]}")
    # outside the setting's block: a stateful setting (EnCodec's bandwidth) holds a lock
    log.info("continuing %d frames by %d at %g tokens/s", p, g, rate)
    codes = generate(lm, prompt, g, seed=seed, temperature=float(temperature), top_k=top_k)
    codes = codes.cpu()
    with at_lm_setting(codec, record) as window:
        out = codec.decode_codes(codes[None].to(device), window, round((p + g) * spf))
    settings = ContinuationSettings(
        float(prompt_seconds), float(seconds), float(temperature), top_k, seed, window,
        record.bandwidth if window is None else None, rate, p, g,
    )  # fmt: skip
    return Continuation(out.detach().float().cpu(), boundary, p, codes, settings, sr)
