"""Latent maps of several codecs over one dataset: latents -> projection -> plotly figure.

This is the one call the app and the CLI make for the "Latent map" view.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from analysis.codec_ops import codec_label
from analysis.latents import DEFAULT_CACHE_DIR, LatentSet, encode_waveform, extract_latents
from analysis.plots import ExtraPoint, MapPanel, latent_map_figure, point_meta
from analysis.probe import ProbeScores
from analysis.projection import PROJECTION_CACHE, Projection, ProjectionCache, fit_projection
from codec.models.base import Codec

log = logging.getLogger(__name__)


@dataclass
class LatentMap:
    """Everything behind a map figure.

    Attributes:
        figure: the plotly figure (one panel per codec).
        panels: panel data (positions and metadata), one per codec.
        latents: the dataset's latents per codec.
        projections: the fitted projection per codec.
        uploads: positions of the extra clips per codec, each `[U, 2]`.
    """

    figure: go.Figure
    panels: list[MapPanel]
    latents: list[LatentSet]
    projections: list[Projection]
    uploads: list[np.ndarray] = field(default_factory=list)


def dataset_id(items: Sequence[Any]) -> str:
    """Short hash of the item paths, for projection cache keys."""
    h = hashlib.sha256("\n".join(str(getattr(it, "path", it)) for it in items).encode())
    return h.hexdigest()[:12]


def _subtitle(scores: Mapping[str, ProbeScores] | None) -> str:
    if not scores:
        return ""
    parts = [
        f"{a}: lin {s.linear_accuracy:.2f} / sil {s.silhouette:.2f}"
        for a, s in scores.items()
        if not np.isnan(s.linear_accuracy)
    ]
    return " | ".join(parts)


def build_latent_map(
    codecs: Sequence[Codec],
    items: Sequence[Any],
    window: int | None = None,
    method: str = "umap",
    color_by: str = "instrument",
    uploads: Sequence[tuple[str, torch.Tensor]] = (),
    probe_scores: Mapping[str, Mapping[str, ProbeScores]] | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    projection_cache: ProjectionCache | None = PROJECTION_CACHE,
    random_state: int = 0,
    progress: bool = True,
    labels: Sequence[str] | None = None,
) -> LatentMap:
    """Fit (or reuse) a projection of each codec's pooled latents and plot them side by side.

    Args:
        codecs: one panel per codec.
        items: dataset records (e.g. `analysis.dataset.load_items(...)`).
        window: window size (ignored by codecs without one).
        method: "umap", "pca", "tsne" or "lda" (LDA separates the `color_by` classes).
        color_by: "instrument", "note", "octave", "pitch" or "klass".
        uploads: (label, waveform `[1, N]` at 24 kHz) clips projected into every map.
        probe_scores: {codec label: {attribute: scores}} shown under each panel title (keyed
            by `codec.name` when no `labels` are given).
        cache_dir: latent cache folder (None: no disk cache).
        projection_cache: LRU of fitted projections (None: always refit).
        random_state: projection seed.
        progress: tqdm while extracting latents.
        labels: one panel title per codec ("EnCodec (official)"); default `codec.name`. Needed
            when two codecs share a name (our EnCodec and the official one).
    """
    ds = dataset_id(items)
    meta = point_meta(items)
    panels, sets, projs, ups = [], [], [], []
    names = list(labels) if labels is not None else [c.name for c in codecs]
    if len(names) != len(codecs):
        raise ValueError(f"{len(names)} labels for {len(codecs)} codecs")
    for codec, label in zip(codecs, names):
        lat = extract_latents(codec, items, window, cache_dir=cache_dir, progress=progress)
        labels = [m[color_by] for m in meta] if method == "lda" else None
        key = (
            lat.codec_id,
            ds,
            method,
            lat.window,
            color_by if method == "lda" else None,
            random_state,
        )

        def fit(lat: LatentSet = lat, labels: list[str] | None = labels) -> Projection:
            return fit_projection(lat.pooled, method, labels, random_state)

        proj = projection_cache.get_or_fit(key, fit) if projection_cache is not None else fit()
        extra: list[ExtraPoint] = []
        pos = np.zeros((0, 2))
        if uploads:
            pooled = np.stack([encode_waveform(codec, w, lat.window).pooled for _, w in uploads])
            pos = proj.transform(pooled)
            extra = [ExtraPoint(lbl, float(p[0]), float(p[1])) for (lbl, _), p in zip(uploads, pos)]
        sub = _subtitle(probe_scores.get(label) if probe_scores else None)
        title = codec_label(codec, window, label)
        panels.append(MapPanel(title, proj.embedding, meta, sub, extra))
        sets.append(lat)
        projs.append(proj)
        ups.append(pos)
    title = f"{method.upper()} of pooled latents, coloured by {color_by}"
    return LatentMap(latent_map_figure(panels, color_by, title), panels, sets, projs, ups)
