"""Argument types shared by the `python -m analysis` commands: each validates one option and
raises `argparse.ArgumentTypeError` naming the problem (a usage error, exit status 2)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any


def codec_names(text: str) -> tuple[str, ...]:
    """--codecs: "all" (or "both"), "none", or a comma list of registered backends."""
    from codec.models.registry import BACKENDS

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if names in (("all",), ("both",)):
        return ("all",)
    if names == ("none",):
        return ()
    bad = [n for n in names if n not in BACKENDS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown codec(s) {bad or text!r}; choose 'all', 'none' or from {', '.join(BACKENDS)}"
        )
    return names


def codec_spec(text: str) -> Any:
    """--codec NAME=PATH[@LABEL] as an `analysis.models.CodecSpec`."""
    from analysis.models import CodecSpec

    try:
        return CodecSpec.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def temperature(text: str) -> float:
    """A sampling temperature in (0, MAX_TEMPERATURE]."""
    from analysis.continuation import MAX_TEMPERATURE

    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and 0 < v <= MAX_TEMPERATURE):
        raise argparse.ArgumentTypeError(
            f"temperature must be a number in (0, {MAX_TEMPERATURE:g}], got {text!r}"
        )
    return v


def seed(text: str) -> int:
    """An integer >= 0."""
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0, got {text!r}")
    return v


def lm_spec(text: str) -> tuple[str, Path]:
    """--lm CODEC=CKPT as (codec key or backend, path)."""
    from analysis.continuation_lms import parse_lm_spec

    try:
        return parse_lm_spec(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
