"""2-D projections of pooled latents: UMAP (default), PCA, t-SNE and LDA.

Every method standardises the pooled latents first (per-dimension z-score fitted on the map's
clips), so codecs with different latent scales are comparable.

`Projection.transform` places new clips (uploads) into a fitted map:
- UMAP, PCA, LDA: the fitted model's own `transform`.
- t-SNE has no out-of-sample transform. A new point is placed at the inverse-distance weighted
  mean of the map positions of its k nearest fitted points (in standardised latent space); a
  point identical to a fitted one lands exactly on it. This keeps the map fixed (refitting
  t-SNE with the new point would move every other point).

Fitted projections are kept in an in-memory LRU (`ProjectionCache`) keyed by whatever the
caller passes, e.g. (codec identity, dataset, method, window); nothing is pickled to disk.
Embeddings can be saved as `.npz` with `save_embedding`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

METHODS = ("umap", "pca", "tsne", "lda")


@dataclass
class Projection:
    """A fitted 2-D projection.

    Attributes:
        method: one of METHODS.
        embedding: map positions of the fitted points, `[N, 2]`.
        scaler: the standardiser fitted on the pooled latents.
        model: the fitted sklearn/umap estimator (None for t-SNE).
        fitted: standardised fitted latents `[N, D]` (t-SNE's neighbour lookup).
        random_state: seed used.
    """

    method: str
    embedding: np.ndarray
    scaler: StandardScaler
    model: Any
    fitted: np.ndarray
    random_state: int
    k_neighbors: int = 5

    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Map positions `[M, 2]` of new pooled latents `[M, D]` (or one `[D]`)."""
        x = np.atleast_2d(np.asarray(latents, dtype=np.float64))
        if x.shape[1] != self.fitted.shape[1]:
            raise ValueError(
                f"latents have dim {x.shape[1]}, the map was fitted on {self.fitted.shape[1]}"
            )
        z = self.scaler.transform(x)
        if self.method == "tsne":
            return _knn_place(self.fitted, self.embedding, z, self.k_neighbors)
        return _to_2d(self.model.transform(z))


def _to_2d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.shape[1] >= 2:
        return y[:, :2]
    return np.concatenate([y, np.zeros((y.shape[0], 2 - y.shape[1]))], axis=1)


def _knn_place(fitted: np.ndarray, embedding: np.ndarray, z: np.ndarray, k: int) -> np.ndarray:
    k = max(1, min(k, len(fitted)))
    nn = NearestNeighbors(n_neighbors=k).fit(fitted)
    dist, idx = nn.kneighbors(z)
    out = np.empty((len(z), 2))
    for i in range(len(z)):
        if dist[i, 0] < 1e-9:
            out[i] = embedding[idx[i, 0]]
            continue
        w = 1.0 / dist[i]
        out[i] = (embedding[idx[i]] * w[:, None]).sum(0) / w.sum()
    return out


def fit_projection(
    pooled: np.ndarray,
    method: str = "umap",
    labels: Sequence[Hashable] | None = None,
    random_state: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> Projection:
    """Fit a 2-D projection on pooled latents `[N, D]`.

    Args:
        pooled: one row per clip.
        method: "umap", "pca", "tsne" or "lda" (LDA needs `labels` with >= 2 classes).
        labels: class of each row (LDA only).
        random_state: seed (UMAP, t-SNE, PCA solver).
        n_neighbors, min_dist: UMAP parameters (n_neighbors is clipped to N - 1).

    Returns:
        The fitted Projection; `embedding` is `[N, 2]`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of {METHODS}")
    x = np.asarray(pooled, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need pooled latents [N >= 3, D] to fit a map, got {x.shape}")
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    model: Any = None
    if method == "pca":
        model = PCA(n_components=min(2, z.shape[1]), random_state=random_state).fit(z)
        emb = _to_2d(model.transform(z))
    elif method == "lda":
        if labels is None or len(set(labels)) < 2:
            raise ValueError("LDA needs labels with at least two classes (colour attribute)")
        y = np.asarray([str(v) for v in labels])
        model = LinearDiscriminantAnalysis(n_components=min(2, len(set(y)) - 1, z.shape[1]))
        emb = _to_2d(model.fit(z, y).transform(z))
    elif method == "tsne":
        perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3.0)))
        emb = TSNE(
            n_components=2, perplexity=perplexity, random_state=random_state, init="pca"
        ).fit_transform(z)
    else:
        import umap  # lazy: importing and first use compile numba code (~10 s)

        model = umap.UMAP(
            n_components=2,
            n_neighbors=max(2, min(n_neighbors, len(z) - 1)),
            min_dist=min_dist,
            random_state=random_state,
            n_jobs=1,
        )
        emb = model.fit_transform(z)
    return Projection(method, np.asarray(emb, dtype=np.float64), scaler, model, z, random_state)


class ProjectionCache:
    """In-memory LRU of fitted projections, e.g. keyed by (codec id, dataset, method, window)."""

    def __init__(self, maxsize: int = 16) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Projection] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_fit(self, key: Hashable, fit: Callable[[], Projection]) -> Projection:
        """The cached projection for `key`, or `fit()` stored under it."""
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        proj = fit()
        self._data[key] = proj
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return proj

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


PROJECTION_CACHE = ProjectionCache()


def save_embedding(path: str | Path, embedding: np.ndarray, ids: Sequence[str]) -> Path:
    """Write `embedding [N, 2]` and clip ids (e.g. file paths) to an `.npz` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f, embedding=np.asarray(embedding, np.float64), ids=np.array([str(i) for i in ids])
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass
class SavedEmbedding:
    """What `load_embedding` returns: `embedding [N, 2]` and one id per row."""

    embedding: np.ndarray
    ids: list[str]


def load_embedding(path: str | Path) -> SavedEmbedding:
    """Read an embedding written by `save_embedding` (no pickle)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return SavedEmbedding(data["embedding"], [str(s) for s in data["ids"]])
