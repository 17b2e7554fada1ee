"""Projections (PCA, t-SNE, LDA; UMAP lives in test_analysis_umap.py), the LRU, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.plots import ExtraPoint, MapPanel, latent_map_figure, point_meta
from analysis.projection import (
    ProjectionCache,
    fit_projection,
    load_embedding,
    save_embedding,
)


def _clusters(seed: int = 0, n: int = 12, d: int = 16) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (3, d))
    x = np.concatenate([c + rng.normal(0, 1, (n, d)) for c in centres])
    return x, [lbl for lbl in "abc" for _ in range(n)]


def test_pca_transform_of_fitted_points_is_their_position() -> None:
    x, _ = _clusters()
    proj = fit_projection(x, "pca")
    assert proj.embedding.shape == (len(x), 2)
    np.testing.assert_allclose(proj.transform(x), proj.embedding, atol=1e-9)
    np.testing.assert_allclose(proj.transform(x[3]), proj.embedding[3:4], atol=1e-9)
    with pytest.raises(ValueError, match="dim"):
        proj.transform(np.zeros((1, 5)))


def test_tsne_places_new_points_by_neighbours() -> None:
    x, _ = _clusters(n=8)
    proj = fit_projection(x, "tsne", random_state=0)
    np.testing.assert_allclose(proj.transform(x[:5]), proj.embedding[:5])
    # a point just next to fitted point 2 lands near it, far from other clusters
    near = proj.transform(x[2] + 1e-3)[0]
    d = np.linalg.norm(proj.embedding - near, axis=1)
    assert np.argmin(d) in range(8) and d[2] < np.median(d)


def test_lda_separates_labels_and_needs_them() -> None:
    x, y = _clusters()
    proj = fit_projection(x, "lda", labels=y)
    emb = proj.embedding
    centroid = {c: emb[[i for i, v in enumerate(y) if v == c]].mean(0) for c in "abc"}
    for i, lbl in enumerate(y):
        dists = {c: np.linalg.norm(emb[i] - m) for c, m in centroid.items()}
        assert min(dists, key=dists.get) == lbl
    with pytest.raises(ValueError, match="labels"):
        fit_projection(x, "lda")
    with pytest.raises(ValueError, match="unknown projection"):
        fit_projection(x, "isomap")


def test_projection_lru_hits_and_evicts() -> None:
    x, _ = _clusters()
    cache = ProjectionCache(maxsize=2)
    calls = []

    def fit(seed: int):
        calls.append(seed)
        return fit_projection(x, "pca", random_state=seed)

    a = cache.get_or_fit(("h", "ds", "pca", 4), lambda: fit(0))
    assert cache.get_or_fit(("h", "ds", "pca", 4), lambda: fit(0)) is a
    cache.get_or_fit(("h", "ds", "pca", 6), lambda: fit(1))
    cache.get_or_fit(("h2", "ds", "pca", 4), lambda: fit(2))  # evicts the least recently used (w=4)
    assert len(cache) == 2 and cache.hits == 1 and calls == [0, 1, 2]
    cache.get_or_fit(("h", "ds", "pca", 6), lambda: fit(3))  # still cached
    assert calls == [0, 1, 2]
    cache.get_or_fit(("h", "ds", "pca", 4), lambda: fit(4))  # was evicted
    assert calls == [0, 1, 2, 4]


def test_embedding_npz_round_trip(tmp_path: Path) -> None:
    emb = np.arange(10.0).reshape(5, 2)
    f = save_embedding(tmp_path / "e" / "map.npz", emb, [f"/x/{i}.wav" for i in range(5)])
    back = load_embedding(f)
    np.testing.assert_array_equal(back.embedding, emb)
    assert back.ids[4] == "/x/4.wav"


def test_figure_has_one_panel_per_codec_with_hover_and_uploads() -> None:
    class Item:
        def __init__(self, i: int) -> None:
            self.instrument = ["flute", "cello"][i % 2]
            self.midi = 57 + i
            self.path = Path(f"/d/{i:04d}.wav")

    items = [Item(i) for i in range(6)]
    meta = point_meta(items)
    assert meta[0]["pitch"] == "A3" and meta[1]["note"] == "A#" and meta[0]["file"] == "0000.wav"
    emb = np.random.default_rng(0).normal(size=(6, 2))
    panels = [
        MapPanel("almtokenizer", emb, meta, "instrument: lin 0.9", [ExtraPoint("up", 0.1, 0.2)]),
        MapPanel("encodec", emb * 2, meta),
    ]
    fig = latent_map_figure(panels, color_by="instrument")
    names = {(t.name, t.xaxis) for t in fig.data}
    assert names == {
        ("flute", "x"),
        ("cello", "x"),
        ("uploads", "x"),
        ("flute", "x2"),
        ("cello", "x2"),
    }
    flute = next(t for t in fig.data if t.name == "flute" and t.xaxis == "x")
    assert "instrument" in flute.hovertemplate and "file" in flute.hovertemplate
    assert [row[-1] for row in flute.customdata] == [0, 2, 4]  # row indices for click-to-play
    assert sum(t.showlegend for t in fig.data if t.name == "flute") == 1  # shared legend
    by_octave = latent_map_figure(panels, color_by="octave")
    assert {t.name for t in by_octave.data} == {"3", "4", "uploads"}
    with pytest.raises(ValueError, match="colour"):
        latent_map_figure(panels, color_by="loudness")
