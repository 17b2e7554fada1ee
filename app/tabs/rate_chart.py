"""The Reconstruct tab's rate-quality chart: every codec of the bundled evaluation
(docs/eval/results.json, written by `analysis evaluate`), bits per second against ViSQOL,
pitch kept, recognised as source and DNSMOS, with the current window and bandwidth ringed.

The figures are the report's, measured offline on the demo set's held-out clips; the chart
only draws them (`analysis.rate_quality`), so moving the slider costs no model work.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from analysis.rate_quality import figure, load_rows
from app.config import REPO_ROOT
from app.state import Studio
from codec.models.base import CodecSetting

log = logging.getLogger(__name__)

RESULTS = REPO_ROOT / "docs" / "eval" / "results.json"


@functools.lru_cache(maxsize=4)
def _rows(path: Path) -> tuple[dict[str, Any], ...]:
    try:
        return tuple(load_rows(path))
    except (OSError, ValueError) as e:
        log.warning("no rate-quality chart: %s", e)
        return ()


def marks(studio: Studio, keys: list[str], values: list[Any]) -> dict[str, str]:
    """{codec key: setting label} of the current controls ("w=3", "1.5 kbps"), as the rows of
    `analysis evaluate` name settings."""
    out = {}
    by_key = {c.key: c for c in studio.codecs}
    for key, v in zip(keys, values):
        spec: CodecSetting = by_key[key].setting
        try:
            out[key] = spec.label(spec.check(v))
        except ValueError:
            continue  # an invalid value is the reconstruct events' to report
    return out


def chart(studio: Studio, keys: list[str], values: list[Any], path: Path = RESULTS) -> Any:
    """The plotly figure with the current settings ringed, or None without results."""
    rows = _rows(path)
    if not rows:
        return None
    title = "Rate and quality of every codec (bundled evaluation, held-out clips)"
    return figure(rows, marks(studio, keys, values), title=title)


def build(studio: Studio, widgets: list[gr.components.Component], keys: list[str]) -> gr.Plot:
    """An accordion with the chart under the comparison table, redrawn when a setting moves."""
    rows = _rows(RESULTS)
    with gr.Accordion("Rate and quality of every codec (measured offline)", open=False):
        if rows:
            gr.Markdown(
                "From `docs/eval/results.json` (`python -m analysis evaluate`, the demo set's "
                "held-out clips): the current window and bandwidth are ringed; the dashed line "
                "is the clean original. Opus and Codec2 are the classical reference codecs."
            )
        else:
            gr.Markdown(
                "No evaluation results found (docs/eval/results.json): run "
                "`python -m analysis evaluate --out docs/eval` to draw the chart."
            )
        plot = gr.Plot(value=chart(studio, keys, [w.value for w in widgets]),
                       label="rate and quality", elem_id="rate_quality")  # fmt: skip

    def on_setting(*values: Any) -> Any:
        return chart(studio, keys, list(values))

    if widgets:
        gr.on([w.change for w in widgets], on_setting, widgets, plot, api_name="rate_chart",
              queue=False)  # fmt: skip
    return plot
