"""One rate-quality chart of every codec: bits per second (log) against what a listener and the
field's measures hear.

Panels: ViSQOL (audio mode), pitch kept (neural F0 tracker), recognised as source (the audio
judge) and DNSMOS OVRL (speech clips). Each codec is one line through its settings
(ALMTokenizer's windows, EnCodec's bandwidths, Opus, Codec2, the official EnCodec when its
weights are present), from the rows of one `analysis evaluate` run (results.json); the clean
originals are a dashed line (the ceiling). `marks` rings a setting per codec (the app marks
the current slider and bandwidth). Published figures may be drawn only as `LiteraturePoint`s,
hollow and labelled with their source, never joined to measured lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLEAN = "clean"
# (row key, panel title, y range)
PANELS: tuple[tuple[str, str, tuple[float, float]], ...] = (
    ("visqol", "ViSQOL (audio mode, MOS-LQO)", (1.0, 5.0)),
    ("pitch_accuracy", "pitch kept (notes)", (0.0, 1.0)),
    ("recognised_as_source", "recognised as source (judge)", (0.0, 1.0)),
    ("dnsmos_ovrl", "DNSMOS OVRL (speech)", (1.0, 5.0)),
)


@dataclass(frozen=True)
class LiteraturePoint:
    """A published figure: codec, bits/s, panel key, value, and where it was published."""

    codec: str
    bitrate: float
    key: str
    value: float
    source: str


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an `analysis evaluate` results.json (NaN for JSON nulls).

    Raises:
        FileNotFoundError: no such file. ValueError: not an evaluation's results.json.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path}: not an `analysis evaluate` results.json (no 'rows' list)")
    return [{k: math.nan if v is None else v for k, v in r.items()} for r in data["rows"]]


def _lines(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["codec"] != CLEAN and _finite(r.get("bitrate")):
            out.setdefault(str(r["codec"]), []).append(r)
    return {k: sorted(v, key=lambda r: float(r["bitrate"])) for k, v in out.items()}


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))


def _clean(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    for r in rows:
        if r["codec"] == CLEAN and _finite(r.get(key)):
            return float(r[key])
    return math.nan


def figure(
    rows: Sequence[Mapping[str, Any]],
    marks: Mapping[str, str] | None = None,
    literature: Sequence[LiteraturePoint] = (),
    title: str = "Rate and quality of every codec (held-out clips)",
):
    """The chart as a plotly figure (2 x 2 panels)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[1] for p in PANELS],
                        horizontal_spacing=0.08, vertical_spacing=0.14)  # fmt: skip
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
    lines = _lines(rows)
    for i, (key, _, yr) in enumerate(PANELS):
        rc = {"row": i // 2 + 1, "col": i % 2 + 1}
        for j, (codec, rs) in enumerate(lines.items()):
            pts = [r for r in rs if _finite(r.get(key))]
            color = palette[j % len(palette)]
            fig.add_trace(go.Scatter(
                x=[r["bitrate"] for r in pts], y=[r[key] for r in pts], mode="lines+markers",
                name=codec, legendgroup=codec, showlegend=i == 0, line={"color": color},
                text=[r["setting"] for r in pts],
                hovertemplate=codec + " %{text}: %{y:.3g} at %{x:.0f} bit/s<extra></extra>",
            ), **rc)  # fmt: skip
            marked = [r for r in pts if marks and marks.get(codec) == r["setting"]]
            if marked:
                fig.add_trace(go.Scatter(
                    x=[r["bitrate"] for r in marked], y=[r[key] for r in marked], mode="markers",
                    marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 3,
                            "color": color}}, showlegend=False, hoverinfo="skip",
                ), **rc)  # fmt: skip
        ceiling = _clean(rows, key)
        if math.isfinite(ceiling):
            fig.add_hline(
                y=ceiling, line_dash="dash", line_color="gray", annotation_text="clean original",
                annotation_font_size=10, **rc,
            )  # fmt: skip
        lit = [p for p in literature if p.key == key]
        if lit:
            fig.add_trace(go.Scatter(
                x=[p.bitrate for p in lit], y=[p.value for p in lit], mode="markers",
                name="published (not measured here)", legendgroup="lit", showlegend=True,
                marker={"symbol": "diamond-open", "size": 10, "color": "black"},
                text=[f"{p.codec}: {p.source}" for p in lit],
                hovertemplate="%{text}: %{y:.3g} at %{x:.0f} bit/s<extra></extra>",
            ), **rc)  # fmt: skip
        fig.update_yaxes(range=list(yr), **rc)
        fig.update_xaxes(type="log", title_text="bits per second", **rc)
    fig.update_layout(template="plotly_white", title=title, height=640,
                      legend={"orientation": "h", "y": -0.12})  # fmt: skip
    return fig


def plot_png(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    marks: Mapping[str, str] | None = None,
    literature: Sequence[LiteraturePoint] = (),
) -> Path:
    """The same chart as a PNG (matplotlib, Agg), for the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    lines = _lines(rows)
    for ax, (key, title, yr) in zip(axes.flat, PANELS):
        for codec, rs in lines.items():
            pts = [r for r in rs if _finite(r.get(key))]
            if not pts:
                continue
            (ln,) = ax.plot([r["bitrate"] for r in pts], [r[key] for r in pts], marker="o",
                            label=codec)  # fmt: skip
            for r in pts:
                ax.annotate(r["setting"], (r["bitrate"], r[key]), fontsize=6, alpha=0.7)
                if marks and marks.get(codec) == r["setting"]:
                    ax.plot([r["bitrate"]], [r[key]], "o", ms=14, mfc="none",
                            mec=ln.get_color(), mew=2)  # fmt: skip
        ceiling = _clean(rows, key)
        if math.isfinite(ceiling):
            ax.axhline(ceiling, ls="--", color="gray", lw=1, label="clean original")
        lit = [p for p in literature if p.key == key]
        if lit:
            ax.plot([p.bitrate for p in lit], [p.value for p in lit], "kD", mfc="none",
                    label="published (not measured here)")  # fmt: skip
        ax.set_xscale("log")
        ax.set_ylim(*yr)
        ax.set_title(title)
        ax.set_xlabel("bits per second")
        ax.grid(alpha=0.3)
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
