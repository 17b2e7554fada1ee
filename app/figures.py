"""Small plotly figures for the Reconstruct tab: spectrogram, codebook usage, token timeline.

Numbers come from `codec.metrics.log_mel` and `codec.tokenizer.stats`; this module only draws.
All spectrograms share one colour range so the original and both reconstructions compare.

The figures are written as plotly JSON directly (`gr.Plot` takes it as `PlotData`), not built
through `plotly.graph_objects`: its validation and template copies took about half of a
reconstruct request's server time (profiled: 9 of 18 s for 5 requests, 7 figures each), all of
it holding the GIL. Arrays travel as plotly typed arrays (base64 `bdata`), as `to_json` would
send them; the look is plotly_white's (white plot, light grid).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import torch
from gradio.components.plot import PlotData

from codec.metrics import log_mel
from codec.models.base import SAMPLE_RATE
from codec.tokenizer.stats import CodebookStats, TokenTimeline

SPEC_HOP = 256
SPEC_ZRANGE = (-3.0, 2.0)  # log10 mel magnitude
MAX_SPEC_FRAMES = 600
MAX_TIMELINE_TOKENS = 800
GRID = "#EBF0F8"  # plotly_white's grid colour
MAGMA = [
    [0.0, "#000004"], [0.11, "#180f3d"], [0.22, "#440f76"], [0.33, "#721f81"],
    [0.44, "#9e2f7f"], [0.56, "#cd4071"], [0.67, "#f1605d"], [0.78, "#fd9668"],
    [0.89, "#feca8d"], [1.0, "#fcfdbf"],
]  # fmt: skip
TURBO = [
    [0.0, "#30123b"], [0.11, "#4662d7"], [0.22, "#36aaf9"], [0.33, "#1ae4b6"],
    [0.44, "#72fe5e"], [0.56, "#c7ef34"], [0.67, "#fbb938"], [0.78, "#f56918"],
    [0.89, "#c92903"], [1.0, "#7a0403"],
]  # fmt: skip


def typed_array(a: np.ndarray) -> dict[str, Any]:
    """A numpy array as plotly's typed-array JSON (`{"dtype", "bdata", "shape"}`): float32 for
    floats, the narrowest signed integer type for integers."""
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        kind = next(
            t for t in ("i1", "i2", "i4") if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max
        )
    else:
        kind = "f4"
    data = np.ascontiguousarray(a, dtype=np.dtype(kind).newbyteorder("<"))
    out = {"dtype": kind, "bdata": base64.b64encode(data.tobytes()).decode("ascii")}
    if data.ndim > 1:
        out["shape"] = ", ".join(str(n) for n in data.shape)
    return out


def _axis(title: str) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "gridcolor": GRID,
        "zerolinecolor": GRID,
        "linecolor": GRID,
        "automargin": True,
    }


def figure(
    data: list[dict[str, Any]],
    title: str,
    height: int = 230,
    x_title: str = "",
    y_title: str = "",
    **layout: Any,
) -> PlotData:
    """A plotly figure (`data` traces) with the tab's common layout, ready for `gr.Plot`."""
    spec = {
        "data": data,
        "layout": {
            "title": {"text": title, "font": {"size": 13}},
            "height": height,
            "margin": {"l": 45, "r": 10, "t": 35, "b": 35},
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "font": {"color": "#2a3f5f"},
            "xaxis": _axis(x_title),
            "yaxis": _axis(y_title),
            **layout,
        },
    }
    return PlotData(type="plotly", plot=json.dumps(spec, separators=(",", ":")))


def spectrogram_figure(wav: torch.Tensor, title: str) -> PlotData:
    """Log-mel spectrogram of `wav` (`[N]` / `[1, N]` / `[1, 1, N]`) as a plotly heatmap."""
    mel = log_mel(wav.detach().float().reshape(1, -1), n_fft=1024, hop=SPEC_HOP, n_mels=80)[0]
    m = mel.cpu().numpy()  # [80, frames]
    frames = m.shape[1]
    if frames > MAX_SPEC_FRAMES:  # keep the payload small: max-pool time
        f = -(-frames // MAX_SPEC_FRAMES)
        pad = (-frames) % f
        m = np.pad(m, ((0, 0), (0, pad)), constant_values=SPEC_ZRANGE[0])
        m = m.reshape(m.shape[0], -1, f).max(-1)
    else:
        f = 1
    times = np.arange(m.shape[1]) * f * SPEC_HOP / SAMPLE_RATE
    heatmap = {
        "type": "heatmap",
        "z": typed_array(np.round(m, 2)),
        "x": typed_array(np.round(times, 3)),
        "zmin": SPEC_ZRANGE[0],
        "zmax": SPEC_ZRANGE[1],
        "colorscale": MAGMA,
        "showscale": False,
        "hovertemplate": "t %{x:.2f} s<br>mel bin %{y}<br>%{z:.2f}<extra></extra>",
    }
    return figure([heatmap], title, x_title="time (s)", y_title="mel bin")


def codebook_usage_figure(stats: CodebookStats, title: str) -> PlotData:
    """Per RVQ layer: distinct codes used in this clip and the codes' perplexity."""
    layers = [f"q{lay.layer}" for lay in stats.layers]
    used = [int(lay.used) for lay in stats.layers]
    ppl = [round(float(lay.perplexity), 1) for lay in stats.layers]
    bars = [
        {"type": "bar", "x": layers, "y": used, "name": "distinct codes"},
        {"type": "bar", "x": layers, "y": ppl, "name": "perplexity"},
    ]
    return figure(
        bars, title, height=250, y_title=f"of {stats.num_tokens} tokens",
        barmode="group", legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip


def token_timeline_figure(timeline: TokenTimeline, title: str) -> PlotData:
    """Codes per RVQ layer over time (colour = code index)."""
    codes, times = np.asarray(timeline.codes), np.asarray(timeline.times)
    if codes.shape[1] > MAX_TIMELINE_TOKENS:
        keep = np.linspace(0, codes.shape[1] - 1, MAX_TIMELINE_TOKENS).astype(int)
        codes, times = codes[:, keep], times[keep]
    heatmap = {
        "type": "heatmap",
        "z": typed_array(codes.astype(np.int64)),
        "x": typed_array(np.round(times, 3)),
        "y": [f"q{i}" for i in range(codes.shape[0])],
        "colorscale": TURBO,
        "showscale": False,
        "hovertemplate": "t %{x:.2f} s<br>layer %{y}<br>code %{z}<extra></extra>",
    }
    return figure(
        [heatmap], title, height=200 + 6 * min(codes.shape[0], 32),
        x_title=f"time (s), {timeline.frame_rate:.2f} tokens/s",
    )  # fmt: skip


BOUNDARY_COLOR = "#22d3ee"  # cyan: visible on magma and turbo alike


def mark_boundary(
    plot: PlotData, x: float, before: str = "prompt", after: str = "continuation"
) -> PlotData:
    """`plot` with a dashed vertical line at `x` (in its x-axis units) and the labels `before`
    / `after` on either side of it, at the top (the Continue tab's prompt/continuation
    boundary)."""
    spec = json.loads(plot.plot)
    layout = spec["layout"]
    layout["shapes"] = [*layout.get("shapes", []), {
        "type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
        "line": {"color": BOUNDARY_COLOR, "width": 2, "dash": "dash"},
    }]  # fmt: skip
    label = {"xref": "x", "yref": "paper", "y": 1.0, "yanchor": "top", "showarrow": False,
             "font": {"color": "white", "size": 11}, "bgcolor": "rgba(0,0,0,0.45)"}  # fmt: skip
    layout["annotations"] = [
        *layout.get("annotations", []),
        {**label, "x": x, "xanchor": "right", "text": f"{before} "},
        {**label, "x": x, "xanchor": "left", "text": f" {after}"},
    ]
    return PlotData(type="plotly", plot=json.dumps(spec, separators=(",", ":")))
