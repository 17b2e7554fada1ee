"""Plotly figures of latent maps: one panel per codec, shared colours and legend.

Each dataset point carries hover text (instrument, note, pitch, file) and, in `customdata`,
its row index (last column) so a UI can find the clip behind a clicked point. Extra markers
(uploaded clips projected into the map) are drawn as black stars with their label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis.groups import item_pitch
from codec.data.goodsounds import NOTE_NAMES

COLOR_BY = ("instrument", "note", "octave", "pitch", "klass")
_PALETTE = qualitative.Dark24 + qualitative.Light24


@dataclass
class ExtraPoint:
    """An extra marker (e.g. an uploaded clip) at map position (x, y)."""

    label: str
    x: float
    y: float


@dataclass
class MapPanel:
    """One codec's map.

    Attributes:
        title: panel title (codec label).
        embedding: positions `[N, 2]`.
        meta: one dict per point with string values for "instrument", "note", "octave",
            "pitch", "klass", "file".
        subtitle: extra text under the title (e.g. probe scores).
        extra: extra markers.
    """

    title: str
    embedding: np.ndarray
    meta: list[dict[str, str]]
    subtitle: str = ""
    extra: list[ExtraPoint] = field(default_factory=list)


def point_meta(items: Sequence[Any]) -> list[dict[str, str]]:
    """Hover/colour metadata of dataset records (or plain paths)."""
    out = []
    for it in items:
        note, octave = item_pitch(it)
        path = getattr(it, "path", it)
        out.append(
            {
                "instrument": str(getattr(it, "instrument", "") or "?"),
                "note": note or "-",
                "octave": "-" if octave is None else str(octave),
                "pitch": f"{note}{octave}" if note and octave is not None else "-",
                "klass": str(getattr(it, "klass", "") or "-"),
                "file": Path(str(path)).name if path is not None else "",
                "path": str(path),
            }
        )
    return out


def _order(values: set[str], color_by: str) -> list[str]:
    def key(v: str) -> tuple:
        if color_by == "note" and v in NOTE_NAMES:
            return (0, NOTE_NAMES.index(v), v)
        if color_by == "octave" and v.lstrip("-").isdigit():
            return (0, int(v), v)
        if color_by == "pitch" and len(v) >= 2 and v[-1].isdigit():
            n = v.rstrip("-0123456789")
            o = v[len(n) :]
            if n in NOTE_NAMES and o.lstrip("-").isdigit():
                return (0, int(o) * 12 + NOTE_NAMES.index(n), v)
        return (1, 0, v)

    return sorted(values, key=key)


def latent_map_figure(
    panels: Sequence[MapPanel], color_by: str = "instrument", title: str | None = None
) -> go.Figure:
    """A figure with one scatter panel per codec, coloured by `color_by` (one of COLOR_BY).

    Colours and legend entries are shared: clicking a legend entry hides that class in every
    panel."""
    if color_by not in COLOR_BY:
        raise ValueError(f"unknown colour attribute {color_by!r}; choose one of {COLOR_BY}")
    if not panels:
        raise ValueError("no panels to plot")
    titles = [p.title + (f"<br><sup>{p.subtitle}</sup>" if p.subtitle else "") for p in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.06)
    classes = _order({m[color_by] for p in panels for m in p.meta}, color_by)
    colours = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(classes)}
    hover = (
        "instrument: %{customdata[0]}<br>note: %{customdata[1]}<br>pitch: %{customdata[2]}"
        "<br>file: %{customdata[3]}<extra></extra>"
    )
    for col, panel in enumerate(panels, start=1):
        emb = np.asarray(panel.embedding, dtype=float)
        for cls in classes:
            idx = [i for i, m in enumerate(panel.meta) if m[color_by] == cls]
            if not idx:
                continue
            custom = [
                [panel.meta[i]["instrument"], panel.meta[i]["note"], panel.meta[i]["pitch"],
                 panel.meta[i]["file"], i]
                for i in idx
            ]  # fmt: skip
            fig.add_trace(
                go.Scatter(
                    x=emb[idx, 0], y=emb[idx, 1], mode="markers", name=cls, legendgroup=cls,
                    showlegend=col == 1, marker={"color": colours[cls], "size": 7, "opacity": 0.85},
                    customdata=custom, hovertemplate=hover,
                ),
                row=1, col=col,
            )  # fmt: skip
        if panel.extra:
            fig.add_trace(
                go.Scatter(
                    x=[e.x for e in panel.extra], y=[e.y for e in panel.extra],
                    mode="markers+text", text=[e.label for e in panel.extra],
                    textposition="top center", name="uploads", legendgroup="uploads",
                    showlegend=col == 1,
                    marker={"symbol": "star", "size": 15, "color": "black"},
                    hovertemplate="%{text}<extra>upload</extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_layout(
        title=title, legend_title_text=color_by, template="plotly_white",
        height=520, width=max(560, 520 * len(panels)), margin={"t": 90},
    )  # fmt: skip
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig
