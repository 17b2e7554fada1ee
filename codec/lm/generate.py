"""Continue a code prompt with a token LM: seeded sampling with temperature and top-k.

    lm = load_lm("work_dirs/lm/alm_w3/best", codec=codec)       # refuses another tokenizer
    codes = generate(lm, prompt, num_frames=75, seed=0, temperature=0.9, top_k=250)
    # prompt [n_q, T] -> codes [n_q, T + 75]; the first T frames are the prompt's

The delay pattern is handled inside the model (`TokenLM.continue_codes`): the prompt is laid
out delayed, new steps are drawn until the finest codebook of the last frame is known, and the
result is undelayed. Every argument is checked first; a bad one raises `ValueError` naming it.
"""

from __future__ import annotations

import math

import torch

from codec.lm.model import Sampler, TokenLM

MAX_TEMPERATURE = 100.0


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def frame_limit(model: TokenLM, max_frames: int | None, max_seconds: float | None) -> int:
    """The most frames (prompt + new) a call may return: the model's context, lowered by
    `max_frames` and by `max_seconds` (times the tokenizer's frame rate)."""
    limit = model.context_frames
    if max_frames is not None:
        limit = min(limit, _check_int(max_frames, "max_frames", 1))
    if max_seconds is not None:
        if not (isinstance(max_seconds, int | float) and math.isfinite(max_seconds)) or (
            max_seconds <= 0
        ):
            raise ValueError(f"max_seconds must be a positive number, got {max_seconds!r}")
        if model.tokenizer is None:
            raise ValueError("max_seconds needs the model's frame rate: load it with load_lm")
        # floor, forgiving float error: 0.29 s at 100 Hz is 29 frames, not 28
        limit = min(limit, math.floor(max_seconds * model.tokenizer.frame_rate + 1e-6))
    return limit


def make_sampler(temperature: float, top_k: int | None, generator: torch.Generator) -> Sampler:
    """logits `[B, K]` -> codes `[B]`: softmax(logits / temperature) over the top_k codes."""

    def sample(logits: torch.Tensor) -> torch.Tensor:
        scaled = logits.float() / temperature
        if top_k is not None and top_k < scaled.shape[-1]:
            kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, -math.inf)
        probs = torch.softmax(scaled, dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return sample


def check_prompt(model: TokenLM, prompt: object) -> torch.Tensor:
    """The prompt as int64 `[B, n_q, T]`.

    Raises:
        ValueError: not an integer tensor `[n_q, T]` / `[B, n_q, T]`, another n_q, fewer than
            one frame, or codes outside [0, K).
    """
    if not isinstance(prompt, torch.Tensor):
        raise ValueError(f"prompt must be a torch.Tensor of codes, got {type(prompt).__name__}")
    if prompt.dtype.is_floating_point or prompt.dtype.is_complex or prompt.dtype == torch.bool:
        raise ValueError(f"prompt must hold integer codes, got {prompt.dtype}")
    if prompt.dim() not in (2, 3):
        raise ValueError(f"prompt must be [n_q, T] or [B, n_q, T], got shape {tuple(prompt.shape)}")
    batch = prompt if prompt.dim() == 3 else prompt[None]
    if batch.shape[1] != model.n_q:
        raise ValueError(f"prompt has {batch.shape[1]} codebooks; the LM models {model.n_q}")
    if batch.shape[0] < 1 or batch.shape[-1] < 1:
        raise ValueError(f"prompt is shorter than one frame (shape {tuple(prompt.shape)})")
    lo, hi = int(batch.min()), int(batch.max())
    if lo < 0 or hi >= model.codebook_size:
        raise ValueError(f"prompt codes must lie in [0, {model.codebook_size}), got [{lo}, {hi}]")
    return batch.long()


@torch.no_grad()
def generate(
    model: TokenLM,
    prompt: torch.Tensor,
    num_frames: int,
    *,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    max_frames: int | None = None,
    max_seconds: float | None = None,
) -> torch.Tensor:
    """Continue `prompt` by `num_frames` frames.

    Args:
        model: a token LM (`load_lm`), on any device.
        prompt: codes `[n_q, T]` (or `[B, n_q, T]`), T >= 1.
        num_frames: frames to add (>= 1).
        seed: the sampling generator's seed (same seed, device and inputs: same codes).
        temperature: in (0, MAX_TEMPERATURE]; top_k: None (all codes) or 1 ... K.
        max_frames, max_seconds: caps on T + num_frames (besides the model's context).

    Returns:
        int64 codes `[n_q, T + num_frames]` (or `[B, n_q, T + num_frames]`) on the model's
        device; the first T frames equal the prompt.

    Raises:
        ValueError: any argument out of range (the message names it).
    """
    batch = check_prompt(model, prompt)
    n = _check_int(num_frames, "num_frames", 1)
    _check_int(seed, "seed", 0)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool):
        raise ValueError(f"temperature must be a number, got {temperature!r}")
    if not (math.isfinite(temperature) and 0 < temperature <= MAX_TEMPERATURE):
        raise ValueError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got {temperature}")
    if top_k is not None:
        _check_int(top_k, "top_k", 1, model.codebook_size)
    limit = frame_limit(model, max_frames, max_seconds)
    t = batch.shape[-1]
    if t + n > limit:
        raise ValueError(
            f"prompt ({t} frames) + num_frames ({n}) = {t + n} frames exceeds the limit of "
            f"{limit} frames (the model's context {model.context_frames}, max_frames, "
            "max_seconds)"
        )
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        out = model.continue_codes(batch.to(device), n, make_sampler(temperature, top_k, generator))
    finally:
        model.train(was_training)
    return out if prompt.dim() == 3 else out[0]
