"""Widgets and handler wrappers the tabs share."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import gradio as gr

from analysis.models import LoadedCodec, no_latents_reason
from app.errors import user_errors
from app.gate import BusyError
from app.state import WINDOW_MAX, WINDOW_MIN, Studio
from codec.models.base import CodecSetting


def window_slider(value: int, elem_id: str, label: str = "ALMTokenizer window") -> gr.Slider:
    """The ALMTokenizer window-size slider (w = 2..10, integer steps)."""
    return gr.Slider(WINDOW_MIN, WINDOW_MAX, value=value, step=1, label=label, elem_id=elem_id)


def setting_radio(setting: CodecSetting, noun: str | None = None, **kwargs: Any) -> gr.Radio:
    """A codec setting's radio (EnCodec's bandwidth) that takes a choice as a number or as
    its text: 1.5, "1.5" and "1.5 kbps" all select 1.5 kbps, in the page and through the API
    (`view_api()` documents both forms).

    Choices with names (Codec2's modes) show their names and take them as text too; `noun`
    names the setting in errors ("bitrate" for Opus, whose "bandwidth" is its audio band).

    Gradio's own radio, with this instance's `preprocess` and `api_info` replaced (a subclass
    would make Gradio's component metaclass write a .pyi stub into the source tree)."""
    shown = list(zip(setting.names, setting.choices)) if setting.names else list(setting.choices)
    radio = gr.Radio(shown, value=setting.default, **kwargs)

    def preprocess(payload: str | int | float | None) -> float | None:
        if payload is None:
            return None
        try:
            return setting.check(payload)
        except ValueError as e:
            message = str(e).replace(setting.kind, noun, 1) if noun else str(e)
            raise gr.Error(message, print_exception=False) from None

    def api_info() -> dict[str, Any]:
        # gradio_client renders any enum as quoted strings, so the numbers are documented as
        # `float` (their values in the description) and the texts as a Literal
        numbers = [float(c) for c in setting.choices]
        texts = [str(c) for c in numbers] + list(setting.names)
        names = f" (or {', '.join(setting.names)})" if setting.names else ""
        return {
            "anyOf": [{"type": "number"}, {"type": "string", "enum": texts}],
            "description": f"one of {', '.join(f'{c:g}' for c in numbers)}{names}, as number "
            "or text",
            "title": "Radio",
        }

    radio.preprocess = preprocess  # type: ignore[method-assign]
    radio.api_info = api_info  # type: ignore[method-assign]
    return radio


def setting_control(entry: LoadedCodec, name: str, window: int) -> gr.components.Component:
    """The control of one codec's setting: a window slider or a bandwidth radio. `name` is its
    API parameter name ("window", "bandwidth", "encodec_official_bandwidth"); the first of each
    kind keeps the element ids the page always had ("window_slider", "bandwidth")."""
    spec = entry.setting
    if spec.kind == "window":
        elem = "window_slider" if name == "window" else f"{entry.key}_window"
        return window_slider(window, elem, label=f"{entry.label} window size w")
    return setting_radio(
        spec,
        label=f"{entry.label} bandwidth (kbps)",
        elem_id="bandwidth" if name == "bandwidth" else f"{entry.key}_bandwidth",
    )


def studio_handler(
    studio: Studio, fn: Callable[..., Any], heavy: bool = True
) -> Callable[..., Any]:
    """An event handler: readable errors (`user_errors`) and marked as a request, so the
    background warm-up steps aside while it runs. Keeps `fn`'s signature (Gradio reads the API
    parameter names and the `gr.Progress` default from it).

    A `heavy` handler (model work) is a coroutine that waits for one of the studio's slots
    (`studio.gate`, app/gate.py) without holding a thread, showing its place in line in its
    progress bar, and then runs `fn` in a worker thread; when the line is full it answers at
    once that the app is busy and how many requests are ahead. A light one (a dropdown
    update) runs at once in Gradio's thread pool."""
    call = user_errors(fn)
    if not heavy:

        @functools.wraps(fn)
        def light(*args: Any, **kwargs: Any) -> Any:
            with studio.request():
                return call(*args, **kwargs)

        return light

    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    shown = next((p.name for p in params if isinstance(p.default, gr.Progress)), None)
    added = None
    if shown is None and not any(p.kind is p.VAR_POSITIONAL for p in params):
        added = inspect.Parameter(
            "queue_progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()
        )
        sig = sig.replace(parameters=[*params, added])

    def run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with studio.request():
            return call(*args, **kwargs)

    async def handler(*args: Any, **kwargs: Any) -> Any:
        progress = None
        if added is not None:
            bound = sig.bind(*args, **kwargs)
            progress = bound.arguments.pop(added.name, None)
            args, kwargs = bound.args, bound.kwargs
        elif shown is not None:
            bound = sig.bind(*args, **kwargs)
            progress = bound.arguments.get(shown)

        def on_wait(place: int, waiting: int) -> None:
            if callable(progress):
                progress(0.0, desc=f"waiting for the model: {place} of {waiting} in line")

        try:
            async with studio.gate.slot(on_wait):
                return await anyio.to_thread.run_sync(run, args, kwargs)
        except BusyError as e:
            raise gr.Error(str(e), print_exception=False) from None

    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):  # not __wrapped__:
        setattr(handler, attr, getattr(fn, attr, None))  # Gradio must see the coroutine
    handler.__signature__ = sig  # type: ignore[attr-defined]
    return handler


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


def no_latents_note(studio: Studio, what: str, elem_id: str) -> None:
    """One line on the page saying that the reference codecs are left out of `what` and why
    (nothing when the line-up has none)."""
    if studio.references:
        reason = no_latents_reason([c.label for c in studio.references], what)
        gr.Markdown(f"*{reason}.*", elem_id=elem_id)
