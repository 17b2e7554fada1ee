"""UMAP maps (the one test file that pays umap-learn's numba compilation, ~12 s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.dataset import load_items
from analysis.maps import build_latent_map
from analysis.projection import ProjectionCache, fit_projection
from codec.audio import load_audio
from tests.tiny_models import timbre_dataset, tiny_alm, tiny_encodec

pytestmark = pytest.mark.slow
torch.set_num_threads(1)


def test_umap_transform_of_fitted_points_lands_near_them() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (4, 24))
    x = np.concatenate([c + rng.normal(0, 1, (15, 24)) for c in centres])
    proj = fit_projection(x, "umap", random_state=0, n_neighbors=10)
    again = proj.transform(x)
    spread = np.ptp(proj.embedding, axis=0).max()
    err = np.linalg.norm(again - proj.embedding, axis=1)
    assert np.median(err) < 0.05 * spread, (np.median(err), spread)
    # every re-projected point's nearest fitted point is in its own cluster
    labels = np.repeat(np.arange(4), 15)
    nearest = np.argmin(((again[:, None] - proj.embedding[None]) ** 2).sum(-1), axis=1)
    assert (labels[nearest] == labels).mean() >= 0.95
    # deterministic for a fixed random_state
    np.testing.assert_allclose(fit_projection(x, "umap", random_state=0, n_neighbors=10).embedding,
                               proj.embedding)  # fmt: skip


def test_latent_map_both_codecs_with_an_upload(tmp_path) -> None:
    root = timbre_dataset(tmp_path / "gs", ("flute", "cello", "bass"), (48, 57, 60, 64, 69))
    items = load_items(root)
    upload = load_audio(items[4].path)
    cache = ProjectionCache()
    codecs = [tiny_alm(), tiny_encodec()]
    m = build_latent_map(
        codecs,
        items,
        window=4,
        method="umap",
        uploads=[("mine", upload)],
        cache_dir=tmp_path / "c",
        projection_cache=cache,
        progress=False,
    )
    assert len(m.panels) == 2 and cache.misses == 2
    for panel, pos in zip(m.panels, m.uploads):
        assert panel.embedding.shape == (len(items), 2) and pos.shape == (1, 2)
        # the upload is dataset clip 4: it lands close to that clip's own map position
        d = np.linalg.norm(panel.embedding - pos[0], axis=1)
        assert d[4] < np.percentile(d, 25)
    assert any(t.name == "uploads" for t in m.figure.data)
    build_latent_map(codecs, items, window=4, method="umap", cache_dir=tmp_path / "c",
                     projection_cache=cache, progress=False)  # fmt: skip
    assert cache.hits == 2 and cache.misses == 2
