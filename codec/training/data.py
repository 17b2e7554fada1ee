"""Training and evaluation data loaders with a resumable, rank-aware, epoch-seeded order.

The order of the clips in an epoch depends only on (seed, epoch), the crop offsets and the
augmentation (gain, polarity, timbre) only on (seed, epoch, index) (`CropDataset`), and a weighted
mixture of datasets (`dataloader.mix`) only on (seed, epoch) (`MixedDataset`), so a run resumed at
step s sees exactly the batches an uninterrupted run would have seen from step s on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from codec.training.config import ConfigError, DataloaderConfig, TrainConfig


class ResumableSampler(Sampler[int]):
    """This rank's share of a seeded permutation of the dataset, from a given batch on.

    Like `DistributedSampler(drop_last=True)`: every rank gets `len(dataset) // world_size`
    indices; `skip_batches(k)` drops the first `k * batch_size` of them for the current epoch.
    """

    def __init__(
        self, size: int, rank: int, world_size: int, seed: int, shuffle: bool = True
    ) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.per_rank = size // world_size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the permutation of `epoch` and start `skip` indices into this rank's share."""
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        order = order[: self.per_rank * self.world_size]
        return order[self.rank :: self.world_size][self.skip :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return max(self.per_rank - self.skip, 0)


@dataclass
class Loaders:
    """The training set with its sampler, and the held-out set."""

    train: Dataset
    sampler: ResumableSampler
    held_out: Dataset
    batch_size: int
    num_workers: int

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.per_rank // self.batch_size

    def epoch_loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        """The loader of one epoch, starting after `skip_batches` batches.

        Built per epoch with its own seeded generator, so creating it never draws from the
        global torch RNG (which would make a resumed run diverge).
        """
        self.sampler.set_epoch(epoch, skip_batches * self.batch_size)
        if hasattr(self.train, "set_epoch"):
            self.train.set_epoch(epoch)
        g = torch.Generator().manual_seed(self.sampler.seed * 7919 + epoch)
        return DataLoader(
            self.train,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=self.num_workers,
            drop_last=True,
            generator=g,
            pin_memory=torch.cuda.is_available(),
        )

    def held_out_loader(self) -> DataLoader:
        g = torch.Generator().manual_seed(0)
        return DataLoader(
            self.held_out,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            generator=g,
        )


def _components(
    dl: DataloaderConfig,
) -> list[tuple[str, str | None, float, str, list[str] | None]]:
    """(dataset, path, weight, config key, categories) of `dataset` and every `mix` entry."""
    out = [(dl.dataset, dl.dataset_path, dl.weight, "dataloader.dataset_path", None)]
    for i, m in enumerate(dl.mix):
        key = f"dataloader.mix[{i}].dataset_path"
        out.append((m.dataset, m.dataset_path, m.weight, key, m.categories))
    return out


def build_train_dataset(dl: DataloaderConfig, seed: int, nsecs: float | None = None) -> Dataset:
    """The training set of `dl`: one augmented CropDataset, or a MixedDataset of several.

    Raises:
        ConfigError: a dataset is missing or has no training clips (names its key).
    """
    from codec.data import Augment, MixedDataset, build_dataset

    augment = Augment(tuple(dl.augment.gain_db), dl.augment.polarity)  # type: ignore[arg-type]
    timbre = dl.augment.timbre()
    nsecs = dl.nsecs if nsecs is None else nsecs
    parts, weights = [], []
    for name, path, weight, key, cats in _components(dl):
        try:
            part = build_dataset(
                name, path, "train", nsecs, dl.train_subset_size, seed, augment, cats, timbre
            )
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(f"{key}: {e}") from e
        parts.append(part)
        weights.append(weight)
    if len(parts) == 1 and dl.epoch_size is None:
        return parts[0]
    return MixedDataset(parts, weights, dl.epoch_size, seed)


def build_held_out_dataset(dl: DataloaderConfig, seed: int) -> Dataset:
    """`dl.eval_split` of every dataset (grouped splits), a seeded `test_subset_size` subset."""
    from codec.data import CropDataset, filter_categories, list_items, subset

    items: list = []
    seen: set[str] = set()
    for name, path, _, key, cats in _components(dl):
        try:
            part = filter_categories(list_items(name, path, dl.eval_split), cats)
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(f"{key}: {e}") from e
        # a category-filtered entry of a corpus already listed adds no clip twice
        items += [it for it in part if str(it.path) not in seen]
        seen.update(str(it.path) for it in part)
    items = subset(items, dl.test_subset_size, seed)
    if not items:
        raise ConfigError(f"dataloader.dataset_path: no clips in split {dl.eval_split!r}")
    return CropDataset([it.path for it in items], dl.nsecs, random_crop=False, seed=seed,
                       items=items)  # fmt: skip


def build_loaders(cfg: TrainConfig, rank: int, world_size: int) -> Loaders:
    """Datasets from `cfg.dataloader` (via `codec.data.build_dataset`), split across ranks."""
    from codec.data import build_dataset

    dl, seed = cfg.dataloader, cfg.training.seed
    if dl.mix:
        train, held_out = build_train_dataset(dl, seed), build_held_out_dataset(dl, seed)
    else:
        train = build_train_dataset(dl, seed)
        try:
            held_out = build_dataset(
                dl.dataset, dl.dataset_path, dl.eval_split, dl.nsecs, dl.test_subset_size, seed
            )
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(f"dataloader.dataset_path: {e}") from e
    sampler = ResumableSampler(len(train), rank, world_size, seed, shuffle=dl.shuffle)
    if sampler.per_rank < dl.batch_size:
        raise ConfigError(
            f"dataloader.batch_size: {dl.batch_size} is larger than the {sampler.per_rank} "
            f"training clips per process ({len(train)} clips, {world_size} processes)"
        )
    return Loaders(train, sampler, held_out, dl.batch_size, dl.num_workers)
