"""Turning exceptions into readable `gr.Error` messages, so a bad input never stops the app.

Every event handler is wrapped with `user_errors`: the app's own validation errors and the
project's `AudioError` / `CheckpointError` / `GroupError` (all `ValueError`s) become a `gr.Error`
whose text a user can act on; anything else is logged with its traceback and shown as a short
internal-error message. Either way the server keeps serving.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from codec.audio import AudioError
from codec.checkpoint import CheckpointError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Gradio's upload folders (/tmp/gradio/<sha>/...) are noise for a user: show the file name only.
_ABS_PATH = re.compile(r"(/[^\s:'\"()]+)+/([^/\s:'\"()]+)")


class UserInputError(ValueError):
    """Input the user can fix (no clip, a bad choice); its message is shown as is."""


def _short_paths(text: str) -> str:
    """Replace absolute paths by their last component: "/tmp/gradio/ab12/x.txt" -> "x.txt"."""
    return _ABS_PATH.sub(lambda m: m.group(2), text)


def audio_message(exc: AudioError) -> str:
    """A readable message for an `AudioError` from `codec.audio`."""
    text = _short_paths(str(exc))
    name, _, detail = text.partition(": ")
    detail = detail or text
    if "not a readable audio file" in detail or "could not decode" in detail:
        return (
            f"'{name}' is not an audio file this app can read. Upload a WAV, FLAC, OGG or MP3 "
            "clip, or record one with the microphone."
        )
    if "longer than" in detail and "cap" in detail:
        return (
            f"'{name}' is too long: {detail}. Trim it or start the app with a larger --max-seconds."
        )
    if "0 samples" in detail or "no samples" in detail:
        return f"'{name}' is empty (it holds no audio samples). Upload or record a longer clip."
    if "file not found" in detail:
        return f"'{name}' was not found; upload it again."
    return f"Cannot use '{name}': {detail}"


def user_message(exc: BaseException) -> str:
    """The text shown to the user for `exc`."""
    if isinstance(exc, UserInputError):
        return str(exc)
    if isinstance(exc, AudioError):
        return audio_message(exc)
    if isinstance(exc, CheckpointError):
        return f"Model checkpoint problem: {_short_paths(str(exc))}"
    if isinstance(exc, FileNotFoundError):
        missing = Path(exc.filename).name if exc.filename else _short_paths(str(exc))
        return f"File not found: {missing}"
    if isinstance(exc, ValueError):
        return _short_paths(str(exc))
    if isinstance(exc, MemoryError):
        return "Out of memory: try a shorter clip or fewer steps."
    return f"Internal error ({type(exc).__name__}); see the server log for details."


def to_gr_error(exc: BaseException) -> gr.Error:
    """`exc` as a `gr.Error` (a `gr.Error` passes through unchanged)."""
    if isinstance(exc, gr.Error):
        return exc
    return gr.Error(user_message(exc), print_exception=False)


def user_errors(fn: F) -> F:
    """Decorator for event handlers: any exception leaves as a readable `gr.Error`.

    `functools.wraps` keeps the signature (Gradio looks for a `gr.Progress` default in it).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError, MemoryError) as exc:
            log.info("%s: %s", fn.__name__, exc)
            raise to_gr_error(exc) from exc
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            raise to_gr_error(exc) from exc

    return wrapper  # type: ignore[return-value]
