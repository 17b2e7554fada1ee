"""A weighted mixture of datasets, re-drawn every epoch, deterministic for resume.

    MixedDataset([corpus, demo], weights=[0.7, 0.3], epoch_size=N, seed=s)

Position i of epoch e maps to (dataset k, item j, draw d) through a table that depends only on
(seed, epoch): dataset k gets round(w_k / sum(w) * N) positions (largest remainder), filled by
walking seeded permutations of its items (a new permutation when one runs out, counted by d, so
a clip drawn twice gets a different crop and augmentation). ResumableSampler then permutes the
positions; both are pure functions of (seed, epoch), so a resumed run sees the same batches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from codec.data.crops import _stable_seed


class MixedDataset(Dataset[torch.Tensor]):
    """`epoch_size` draws per epoch from `datasets` in proportion to `weights`.

    Args:
        datasets: the components; a component with a `get(index, draw)` method (CropDataset)
            gets the draw counter, others are indexed plainly.
        weights: positive, one per dataset (normalised here).
        epoch_size: positions per epoch (None: the total size of the components).
        seed: the table's seed.
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        weights: Sequence[float],
        epoch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        if not datasets or len(datasets) != len(weights):
            raise ValueError("MixedDataset needs one positive weight per dataset")
        if any(w <= 0 for w in weights):
            raise ValueError(f"mixture weights must be positive, got {list(weights)}")
        sizes = [len(d) for d in datasets]  # type: ignore[arg-type]
        if any(n == 0 for n in sizes):
            raise ValueError(f"a mixture component is empty (sizes {sizes})")
        self.datasets = list(datasets)
        total = float(sum(weights))
        self.weights = [w / total for w in weights]
        self.epoch_size = int(epoch_size) if epoch_size is not None else sum(sizes)
        if self.epoch_size <= 0:
            raise ValueError(f"epoch_size must be positive, got {self.epoch_size}")
        self.seed = seed
        self.epoch = 0
        self.table = self._table(0)

    def counts(self) -> list[int]:
        """Positions per component (largest-remainder rounding of the weights)."""
        raw = [w * self.epoch_size for w in self.weights]
        out = [int(x) for x in raw]
        order = sorted(range(len(raw)), key=lambda k: (out[k] - raw[k], k))
        for k in order[: self.epoch_size - sum(out)]:
            out[k] += 1
        return out

    def _table(self, epoch: int) -> list[tuple[int, int, int]]:
        table: list[tuple[int, int, int]] = []
        for k, count in enumerate(self.counts()):
            n = len(self.datasets[k])  # type: ignore[arg-type]
            for draw in range((count + n - 1) // n):
                rng = random.Random(_stable_seed(self.seed, "mix", epoch, k, draw))
                perm = list(range(n))
                rng.shuffle(perm)
                take = min(n, count - draw * n)
                table.extend((k, j, draw) for j in perm[:take])
        return table

    def set_epoch(self, epoch: int) -> None:
        """Re-draw the table for `epoch` and pass the epoch on to the components."""
        self.epoch = epoch
        self.table = self._table(epoch)
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, index: int) -> torch.Tensor:
        k, j, draw = self.table[index]
        d = self.datasets[k]
        get = getattr(d, "get", None)
        return get(j, draw) if get is not None else d[j]
