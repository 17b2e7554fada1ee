"""Shared data helpers: fixed-length crops, a crop Dataset for training with seeded
augmentation (gain and polarity here, timbre in codec.data.timbre_augment), grouped splits."""

from __future__ import annotations

import hashlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import torch
from torch.utils.data import Dataset

from codec.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio

if TYPE_CHECKING:
    from codec.data.timbre_augment import TimbreAugment

logger = logging.getLogger(__name__)

T = TypeVar("T")


def crop_or_pad(
    wav: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    offset: int | None = None,
) -> torch.Tensor:
    """Cut `[C, N]` to exactly `[C, num_samples]`.

    Longer clips are cropped at `offset`, or at a random offset drawn from `generator` (or at 0
    when neither is given); shorter clips are zero-padded at the end.
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    n = wav.shape[-1]
    if n > num_samples:
        if offset is None:
            offset = 0
            if generator is not None:
                offset = int(torch.randint(0, n - num_samples + 1, (1,), generator=generator))
        offset = min(max(offset, 0), n - num_samples)
        return wav[..., offset : offset + num_samples]
    if n < num_samples:
        return torch.nn.functional.pad(wav, (0, num_samples - n))
    return wav


def _stable_seed(*parts: object) -> int:
    """A seed that depends only on `parts` (not on PYTHONHASHSEED or worker ids)."""
    digest = hashlib.sha1(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class Augment:
    """Loader-side augmentation of training crops: a random gain and a polarity flip.

    Each draw depends only on a seed (CropDataset: seed, epoch, index), so a resumed run sees
    the same augmented batches. The gain is drawn uniformly in dB from `gain_db` and capped so
    the crop's peak stays at or below full scale (no clipping).

    Args:
        gain_db: (low, high) in dB; (0, 0) disables it.
        polarity: probability of multiplying the crop by -1.
    """

    gain_db: tuple[float, float] = (0.0, 0.0)
    polarity: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.gain_db
        if lo > hi:
            raise ValueError(f"gain_db must be (low, high) with low <= high, got {self.gain_db}")
        if not 0.0 <= self.polarity <= 1.0:
            raise ValueError(f"polarity must be a probability in [0, 1], got {self.polarity}")

    @property
    def active(self) -> bool:
        return self.gain_db != (0.0, 0.0) or self.polarity > 0.0

    def apply(self, wav: torch.Tensor, seed: int) -> torch.Tensor:
        """`wav` `[C, N]` scaled by a seeded gain and sign."""
        rng = random.Random(seed)
        gain = 10.0 ** (rng.uniform(*self.gain_db) / 20.0)
        sign = -1.0 if rng.random() < self.polarity else 1.0
        peak = float(wav.abs().max()) if wav.numel() else 0.0
        if peak > 0.0:
            gain = min(gain, max(1.0 / peak, 1.0))  # a boost never pushes past full scale
        return wav * (sign * gain)


class CropDataset(Dataset[torch.Tensor]):
    """Fixed-length mono crops `[1, nsecs * sample_rate]` of audio files, for codec training.

    With `random_crop` each item is cut at a random offset that depends only on
    (seed, epoch, index), so runs are reproducible whatever the number of DataLoader workers;
    call `set_epoch` to draw new offsets. Without it, crops start at 0. Short clips are
    zero-padded. Only the needed segment of a long file is decoded. `timbre` (training only)
    applies seeded EQ tilt / brightness / detune / room after cropping (a raised pitch reads a
    longer segment: `TimbreAugment.input_samples`), then `augment` a seeded random gain and
    polarity flip; each is seeded on (seed, epoch, index, draw) with its own stream, so turning
    one on never changes the other's draws.

    Attributes:
        paths: the audio files, one item each.
        items: the dataset records the paths came from (any type), same order.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        nsecs: float,
        *,
        sample_rate: int = SAMPLE_RATE,
        random_crop: bool = True,
        seed: int = 0,
        items: Sequence[object] | None = None,
        augment: Augment | None = None,
        timbre: TimbreAugment | None = None,
    ) -> None:
        if nsecs <= 0:
            raise ValueError(f"nsecs must be positive, got {nsecs}")
        if not paths:
            raise ValueError("CropDataset needs at least one audio file")
        self.paths = [Path(p) for p in paths]
        self.items = list(items) if items is not None else list(self.paths)
        if len(self.items) != len(self.paths):
            raise ValueError("items and paths must have the same length")
        self.sample_rate = sample_rate
        self.num_samples = int(round(nsecs * sample_rate))
        self.random_crop = random_crop
        self.seed = seed
        self.augment = augment
        self.timbre = timbre
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random offsets drawn for the next pass."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Returns `[1, num_samples]` float32."""
        return self.get(index)

    def get(self, index: int, draw: int = 0) -> torch.Tensor:
        """Item `index` as `[1, num_samples]` float32; `draw` > 0 gives another crop and
        augmentation of the same clip (a mixture that draws one clip twice in an epoch)."""
        path = self.paths[index]
        n = self.num_samples
        timbre = self.timbre if self.timbre is not None and self.timbre.active else None
        timbre_seed = _stable_seed(self.seed, self.epoch, index, draw, "timbre")
        n_in = timbre.input_samples(n, timbre_seed) if timbre is not None else n
        total = int(audio_duration(path) * self.sample_rate)
        offset = 0
        if self.random_crop and total > n_in:
            parts = (self.seed, self.epoch, index) + ((draw,) if draw else ())
            rng = random.Random(_stable_seed(*parts))
            offset = rng.randint(0, total - n_in)
        try:
            wav = load_audio(
                path,
                self.sample_rate,
                offset_seconds=offset / self.sample_rate,
                duration_seconds=n_in / self.sample_rate,
            )
        except AudioError:
            if offset == 0:
                raise
            # The header over-reports (truncated file): fall back to what actually decodes.
            wav = load_audio(path, self.sample_rate)
        wav = crop_or_pad(wav, n_in)
        if timbre is not None:
            wav = timbre.apply(wav, timbre_seed, self.sample_rate, n)
        if self.augment is not None and self.augment.active:
            wav = self.augment.apply(wav, _stable_seed(self.seed, self.epoch, index, draw, "aug"))
        return wav


@dataclass(frozen=True)
class Split(Generic[T]):
    """Two disjoint parts of a list of items."""

    train: list[T]
    test: list[T]


def grouped_split(
    items: Sequence[T],
    group: Callable[[T], Hashable],
    test_fraction: float,
    seed: int = 0,
    stratify: Callable[[T], Hashable] | None = None,
) -> Split[T]:
    """Split items so that no group (e.g. one sound with several takes) is on both sides.

    Groups are shuffled with `seed` and `round(test_fraction * n_groups)` go to test; with
    `stratify` this happens within each stratum (e.g. each instrument), with at least one test
    group per stratum that has two or more groups. Item order is preserved within each side.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    strata: dict[Hashable, list[Hashable]] = defaultdict(list)
    seen: set[Hashable] = set()
    for item in items:
        g = group(item)
        if g not in seen:
            seen.add(g)
            strata[stratify(item) if stratify else None].append(g)
    rng = random.Random(seed)
    test_groups: set[Hashable] = set()
    for key in sorted(strata, key=repr):
        groups = sorted(strata[key], key=repr)
        rng.shuffle(groups)
        k = int(round(test_fraction * len(groups)))
        if stratify and 0.0 < test_fraction < 1.0 and len(groups) >= 2:
            k = min(max(k, 1), len(groups) - 1)
        test_groups.update(groups[:k])
    return Split(
        train=[it for it in items if group(it) not in test_groups],
        test=[it for it in items if group(it) in test_groups],
    )


def subset(items: Sequence[T], size: int | None, seed: int = 0) -> list[T]:
    """A seeded random subset of `size` items in their original order (all when None/larger)."""
    if size is None or size >= len(items):
        return list(items)
    if size <= 0:
        raise ValueError(f"subset size must be positive, got {size}")
    keep = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[i] for i in keep]
