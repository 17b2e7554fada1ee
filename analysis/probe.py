"""Semantic structure of a codec's pooled latents, per attribute (instrument, note, octave).

Every train/test split is grouped by sound id (all takes of one sound on one side), so a
probe cannot score by recognising the same sound through another microphone.

Per attribute:
- linear separability: standardised LinearSVC, mean accuracy over grouped folds;
- non-linear accuracy: standardised RBF-kernel SVC over the same folds;
- clustering agreement: GaussianMixture with one component per label (on standardised,
  PCA-reduced latents) against the labels: ARI, NMI, homogeneity;
- silhouette score of the labels in standardised latent space.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    adjusted_rand_score,
    homogeneity_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from analysis.groups import item_pitch

log = logging.getLogger(__name__)

ATTRIBUTES = ("instrument", "note", "octave")


@dataclass
class Fold:
    """Row indices of one grouped train/test split."""

    train: np.ndarray
    test: np.ndarray


@dataclass
class ProbeScores:
    """Semantic-structure scores of one codec for one attribute (NaN where undefined)."""

    codec: str
    attribute: str
    n_samples: int
    n_classes: int
    n_groups: int
    n_splits: int
    chance: float
    linear_accuracy: float
    linear_accuracy_std: float
    nonlinear_accuracy: float
    nonlinear_accuracy_std: float
    ari: float
    nmi: float
    homogeneity: float
    silhouette: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_label(item: Any, attribute: str) -> Hashable | None:
    """The label of a record: instrument, note name (from midi when present) or octave."""
    if attribute == "instrument":
        return getattr(item, "instrument", None) or None
    note, octave = item_pitch(item)
    if attribute == "note":
        return note
    if attribute == "octave":
        return octave
    return getattr(item, attribute, None)


def item_group(item: Any) -> Hashable:
    """Split group of a record: its sound id, else its path."""
    sid = getattr(item, "sound_id", None)
    return sid if sid is not None else str(getattr(item, "path", item))


def grouped_folds(
    labels: Sequence[Hashable], groups: Sequence[Hashable], n_splits: int = 5, seed: int = 0
) -> list[Fold]:
    """Grouped (and, when possible, stratified) K-fold splits; one group never spans train and
    test. `n_splits` is reduced to the number of groups."""
    y = np.asarray([str(v) for v in labels])
    g = np.asarray([str(v) for v in groups])
    k = min(n_splits, len(set(g)))
    if k < 2:
        raise ValueError(f"need at least two sound ids for grouped splits, got {len(set(g))}")
    x = np.zeros((len(y), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" warnings
        try:
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            folds = [Fold(tr, te) for tr, te in splitter.split(x, y, g)]
        except ValueError:
            folds = [Fold(tr, te) for tr, te in GroupKFold(n_splits=k).split(x, y, g)]
    return [f for f in folds if len(f.train) and len(f.test)]


def _cv_accuracy(model: Pipeline, x: np.ndarray, y: np.ndarray, folds: list[Fold]) -> list[float]:
    accs = []
    for f in folds:
        y_tr = y[f.train]
        if len(set(y_tr)) < 2:
            pred = np.full(len(f.test), y_tr[0])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                pred = clone(model).fit(x[f.train], y_tr).predict(x[f.test])
        accs.append(float((pred == y[f.test]).mean()))
    return accs


def _clustering(z: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> tuple[float, ...]:
    if n_classes < 2 or n_classes >= len(y):
        return (math.nan,) * 3
    dim = max(1, min(32, z.shape[1], len(z) - 1))
    zr = PCA(n_components=dim, random_state=seed).fit_transform(z)
    gmm = GaussianMixture(n_classes, covariance_type="diag", reg_covar=1e-3, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clusters = gmm.fit(zr).predict(zr)
    return (
        float(adjusted_rand_score(y, clusters)),
        float(normalized_mutual_info_score(y, clusters)),
        float(homogeneity_score(y, clusters)),
    )


def probe_attribute(
    pooled: np.ndarray,
    labels: Sequence[Hashable],
    groups: Sequence[Hashable],
    attribute: str = "label",
    codec: str = "",
    n_splits: int = 5,
    seed: int = 0,
) -> ProbeScores:
    """Scores for one attribute from pooled latents `[N, D]`, labels and sound ids (rows whose
    label is None are dropped first)."""
    keep = [i for i, v in enumerate(labels) if v is not None]
    x = np.asarray(pooled, dtype=np.float64)[keep]
    y = np.asarray([str(labels[i]) for i in keep])
    g = [groups[i] for i in keep]
    classes, counts = np.unique(y, return_counts=True)
    nan = math.nan
    chance = float(counts.max() / counts.sum()) if len(y) else nan
    scores = ProbeScores(
        codec, attribute, len(y), len(classes), len(set(g)), 0, chance,
        nan, nan, nan, nan, nan, nan, nan, nan,
    )  # fmt: skip
    if len(classes) < 2 or len(set(g)) < 2:
        log.warning("probe %s/%s: needs two classes and two sounds; skipped", codec, attribute)
        return scores
    z = StandardScaler().fit_transform(x)
    folds = grouped_folds(y, g, n_splits, seed)
    scores.n_splits = len(folds)
    lin = make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=5000, random_state=seed))
    rbf = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=10.0, gamma="scale"))
    acc_l, acc_n = _cv_accuracy(lin, x, y, folds), _cv_accuracy(rbf, x, y, folds)
    scores.linear_accuracy, scores.linear_accuracy_std = float(np.mean(acc_l)), float(np.std(acc_l))
    scores.nonlinear_accuracy, scores.nonlinear_accuracy_std = (
        float(np.mean(acc_n)),
        float(np.std(acc_n)),
    )
    scores.ari, scores.nmi, scores.homogeneity = _clustering(z, y, len(classes), seed)
    if 2 <= len(classes) < len(y):
        scores.silhouette = float(silhouette_score(z, y))
    return scores


def probe_latents(
    pooled: np.ndarray,
    items: Sequence[Any],
    codec: str = "",
    attributes: Sequence[str] = ATTRIBUTES,
    n_splits: int = 5,
    seed: int = 0,
) -> dict[str, ProbeScores]:
    """`probe_attribute` for each attribute of the records (aligned with `pooled` rows)."""
    groups = [item_group(it) for it in items]
    return {
        a: probe_attribute(
            pooled, [item_label(it, a) for it in items], groups, a, codec, n_splits, seed
        )
        for a in attributes
    }


def fit_probe(pooled: np.ndarray, labels: Sequence[Hashable], c: float = 1.0) -> Pipeline:
    """A linear probe with probabilities: standardised multinomial logistic regression fitted
    on pooled latents `[N, D]`."""
    y = np.asarray([str(v) for v in labels])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(np.asarray(pooled, dtype=np.float64), y)


def probe_proba(model: Pipeline, latents: np.ndarray) -> dict[str, np.ndarray]:
    """Class probabilities of pooled latents `[M, D]` (or one `[D]`): {class: `[M]`}."""
    x = np.atleast_2d(np.asarray(latents, dtype=np.float64))
    p = model.predict_proba(x)
    return {str(c): p[:, i] for i, c in enumerate(model.classes_)}
