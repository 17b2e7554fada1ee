"""Widgets and handler wrappers the tabs share."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from analysis.models import LoadedCodec
from app.errors import user_errors
from app.state import WINDOW_MAX, WINDOW_MIN, Studio


def window_slider(value: int, elem_id: str, label: str = "ALMTokenizer window") -> gr.Slider:
    """The ALMTokenizer window-size slider (w = 2..10, integer steps)."""
    return gr.Slider(WINDOW_MIN, WINDOW_MAX, value=value, step=1, label=label, elem_id=elem_id)


def setting_control(entry: LoadedCodec, name: str, window: int) -> gr.components.Component:
    """The control of one codec's setting: a window slider or a bandwidth radio. `name` is its
    API parameter name ("window", "bandwidth", "encodec_official_bandwidth"); the first of each
    kind keeps the element ids the page always had ("window_slider", "bandwidth")."""
    spec = entry.setting
    if spec.kind == "window":
        elem = "window_slider" if name == "window" else f"{entry.key}_window"
        return window_slider(window, elem, label=f"{entry.label} window size w")
    return gr.Radio(
        list(spec.choices),
        value=spec.default,
        label=f"{entry.label} bandwidth (kbps)",
        elem_id="bandwidth" if name == "bandwidth" else f"{entry.key}_bandwidth",
    )


def studio_handler(studio: Studio, fn: Callable[..., Any]) -> Callable[..., Any]:
    """An event handler: readable errors (`user_errors`) and marked as a request, so the
    background warm-up steps aside while it runs. Keeps `fn`'s signature (Gradio reads the API
    parameter names and the `gr.Progress` default from it)."""

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        with studio.request():
            return fn(*args, **kwargs)

    return user_errors(handler)


def named_handler(
    studio: Studio,
    fn: Callable[..., Any],
    names: Sequence[str],
    progress: bool = False,
    track_tqdm: bool = False,
) -> Callable[..., Any]:
    """A handler whose API parameters are `names` (one per input component, for a line-up
    whose controls are known only at run time), calling `fn(*values)` (plus `progress=` when
    asked for) as `studio_handler` does."""
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    if progress:
        params.append(
            inspect.Parameter(
                "progress",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=gr.Progress(track_tqdm=track_tqdm),
            )
        )
    sig = inspect.Signature(params)

    def handler(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = [bound.arguments[n] for n in names]
        if progress:
            return fn(*values, progress=bound.arguments["progress"])
        return fn(*values)

    handler.__signature__ = sig  # type: ignore[attr-defined]
    handler.__name__ = getattr(fn, "__name__", "handler")
    return studio_handler(studio, handler)
