"""Controls that several tabs share."""

from __future__ import annotations

import gradio as gr

from app.state import WINDOW_MAX, WINDOW_MIN


def window_slider(value: int, elem_id: str, label: str = "ALMTokenizer window") -> gr.Slider:
    """The ALMTokenizer window-size slider (w = 2..10, integer steps)."""
    return gr.Slider(WINDOW_MIN, WINDOW_MAX, value=value, step=1, label=label, elem_id=elem_id)
