"""Small plotly figures for the Reconstruct tab: spectrogram, codebook usage, token timeline.

Numbers come from `codec.metrics.log_mel` and `codec.tokenizer.stats`; this module only draws.
All spectrograms share one colour range so the original and both reconstructions compare.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from codec.metrics import log_mel
from codec.models.base import SAMPLE_RATE
from codec.tokenizer.stats import CodebookStats, TokenTimeline

SPEC_HOP = 256
SPEC_ZRANGE = (-3.0, 2.0)  # log10 mel magnitude
MAX_SPEC_FRAMES = 600
MAX_TIMELINE_TOKENS = 800


def _layout(fig: go.Figure, title: str, height: int = 230) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 13}},
        height=height,
        margin={"l": 45, "r": 10, "t": 35, "b": 35},
        template="plotly_white",
    )
    return fig


def spectrogram_figure(wav: torch.Tensor, title: str) -> go.Figure:
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
    fig = go.Figure(
        go.Heatmap(
            z=np.round(m, 2),
            x=np.round(times, 3),
            zmin=SPEC_ZRANGE[0],
            zmax=SPEC_ZRANGE[1],
            colorscale="Magma",
            showscale=False,
            hovertemplate="t %{x:.2f} s<br>mel bin %{y}<br>%{z:.2f}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="time (s)")
    fig.update_yaxes(title_text="mel bin")
    return _layout(fig, title)


def codebook_usage_figure(stats: CodebookStats, title: str) -> go.Figure:
    """Per RVQ layer: distinct codes used in this clip and the codes' perplexity."""
    layers = [f"q{lay.layer}" for lay in stats.layers]
    used = [lay.used for lay in stats.layers]
    ppl = [round(lay.perplexity, 1) for lay in stats.layers]
    fig = go.Figure(
        [
            go.Bar(x=layers, y=used, name="distinct codes"),
            go.Bar(x=layers, y=ppl, name="perplexity"),
        ]
    )
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(title_text=f"of {stats.num_tokens} tokens")
    return _layout(fig, title, height=250)


def token_timeline_figure(timeline: TokenTimeline, title: str) -> go.Figure:
    """Codes per RVQ layer over time (colour = code index)."""
    codes, times = timeline.codes, timeline.times
    if codes.shape[1] > MAX_TIMELINE_TOKENS:
        keep = np.linspace(0, codes.shape[1] - 1, MAX_TIMELINE_TOKENS).astype(int)
        codes, times = codes[:, keep], times[keep]
    fig = go.Figure(
        go.Heatmap(
            z=codes,
            x=np.round(times, 3),
            y=[f"q{i}" for i in range(codes.shape[0])],
            colorscale="Turbo",
            showscale=False,
            hovertemplate="t %{x:.2f} s<br>layer %{y}<br>code %{z}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text=f"time (s), {timeline.frame_rate:.2f} tokens/s")
    return _layout(fig, title, height=200 + 6 * min(codes.shape[0], 32))
