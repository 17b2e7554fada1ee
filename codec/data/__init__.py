"""Datasets: FSD50K, Good-sounds, the bundled demo set (Good-sounds layout), plain folders and the
training corpus of real recordings (codec.data.corpus).

`list_items` gives the labelled records of a split; `build_dataset` gives a torch Dataset of
fixed-length crops `[1, nsecs * 24000]` for training.

Splits: FSD50K has its own train/val/test. For "goodsounds", "demo" and "folder" the split is
grouped (by sound id, or by file) and stratified (by instrument, or by sub-folder): 80% train,
10% val, 10% test, always drawn with SPLIT_SEED so that changing the training seed never moves a
sound between train and test. "corpus" is split by source file (every clip cut from one file,
or the velocities of one rendered note, on one side), stratified by source: 90% train, 5% val,
5% test. "all" is every item.

Training crops can be augmented (`Augment`: seeded random gain and polarity flip;
`TimbreAugment`: seeded EQ tilt, brightness, detune and room) and several datasets mixed with
weights (`MixedDataset`); see codec.training.data.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

from codec.data.corpus import CorpusItem, load_corpus
from codec.data.crops import Augment, CropDataset, Split, crop_or_pad, grouped_split, subset
from codec.data.folder import FolderItem, list_audio_files, load_folder
from codec.data.fsd50k import FSD50K_SPLITS, FSD50KItem, load_fsd50k, load_fsd50k_vocabulary
from codec.data.goodsounds import (
    GOODSOUNDS_INSTRUMENTS,
    GoodSoundsItem,
    load_goodsounds,
    midi_to_note,
    note_to_midi,
    select_items,
    split_by_sound,
)
from codec.data.mix import MixedDataset
from codec.data.timbre_augment import TimbreAugment

__all__ = [
    "DATASET_NAMES", "DEMO_ROOT", "SPLITS", "SPLIT_SEED", "Augment", "CorpusItem", "CropDataset",
    "FSD50KItem", "MixedDataset", "TimbreAugment",
    "FSD50K_SPLITS", "FolderItem", "GOODSOUNDS_INSTRUMENTS", "GoodSoundsItem", "Split",
    "build_dataset", "crop_or_pad", "grouped_split", "list_audio_files", "list_items",
    "load_folder", "load_fsd50k", "load_fsd50k_vocabulary", "load_goodsounds", "midi_to_note",
    "note_to_midi", "select_items", "split_by_sound", "subset",
]  # fmt: skip

DATASET_NAMES = ("fsd50k", "goodsounds", "demo", "folder", "corpus")
SPLITS = ("train", "val", "test", "all")
SPLIT_SEED = 0
CORPUS_HELD_OUT = 0.1  # val + test share of the corpus (half each)
DEMO_ROOT = Path(__file__).resolve().parents[2] / "data" / "demo"

T = TypeVar("T")
Item = GoodSoundsItem | FSD50KItem | FolderItem | CorpusItem


def _three_way(
    items: list[T],
    split: str,
    group: Callable[[T], Hashable],
    stratify: Callable[[T], Hashable],
    held_out: float = 0.2,
) -> list[T]:
    """Grouped, stratified split: 1 - held_out train, the rest halved into val and test."""
    if split == "all":
        return items
    outer = grouped_split(items, group, held_out, SPLIT_SEED, stratify)
    if split == "train":
        return outer.train
    inner = grouped_split(outer.test, group, 0.5, SPLIT_SEED, stratify)
    return inner.train if split == "val" else inner.test


def list_items(name: str, path: str | Path | None = None, split: str = "all") -> list[Item]:
    """The labelled items of one split of a dataset.

    Args:
        name: "fsd50k", "goodsounds", "demo", "folder" or "corpus".
        path: dataset root; for "demo" None means the bundled data/demo.
        split: "train", "val", "test" or "all".

    Returns:
        FSD50KItem, GoodSoundsItem (one microphone per sound, every klass including scales and
        speech), FolderItem or CorpusItem records.

    Raises:
        ValueError: unknown name or split, missing path. FileNotFoundError: missing data.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if path is None:
        if name != "demo":
            raise ValueError(f"dataset {name!r} needs a path (dataloader.dataset_path)")
        path = DEMO_ROOT
    if name == "fsd50k":
        splits = FSD50K_SPLITS if split == "all" else (split,)
        return [it for s in splits for it in load_fsd50k(path, s)]
    out: list[Item]
    if name == "folder":
        out = [*_three_way(load_folder(path), split, lambda it: it.path, lambda it: it.label)]
        return out
    if name == "corpus":
        corpus = load_corpus(path)
        out = [*_three_way(corpus, split, lambda it: it.group, lambda it: it.source,
                           CORPUS_HELD_OUT)]  # fmt: skip
        return out
    items = load_goodsounds(path, single_notes=False, one_mic_per_sound=True)
    out = [*_three_way(items, split, lambda it: it.sound_id, lambda it: it.instrument)]
    return out


def filter_categories(items: list[Item], categories: Sequence[str] | None) -> list[Item]:
    """The items whose `category` (a corpus clip's: notes, speech, effects, music) is in
    `categories` (None: all). The split is drawn before the filter, so a category's val and
    test clips are the same as in the whole corpus's split.

    Raises:
        ValueError: `categories` given for items that have none.
    """
    if categories is None:
        return items
    if items and not hasattr(items[0], "category"):
        raise ValueError(f"categories {list(categories)}: only the corpus has categories")
    return [it for it in items if it.category in categories]


def build_dataset(
    name: str,
    path: str | Path | None,
    split: str,
    nsecs: float,
    subset_size: int | None = None,
    seed: int = 0,
    augment: Augment | None = None,
    categories: Sequence[str] | None = None,
    timbre: TimbreAugment | None = None,
) -> CropDataset:
    """A CropDataset of `[1, nsecs * 24000]` crops for training or evaluation.

    Crops are at random (seeded) offsets for "train" and start at 0 otherwise; `augment` and
    `timbre` apply to "train" only. `subset_size` keeps a seeded random subset of the split's items.

    Raises:
        ValueError: unknown name/split, or the split is empty.
    """
    items = filter_categories(list_items(name, path, split), categories)
    items = subset(items, subset_size, seed)
    if not items:
        which = f" of categories {list(categories)}" if categories else ""
        raise ValueError(
            f"dataset {name!r} at {path or DEMO_ROOT} has no items in split {split!r}{which}"
        )
    train = split == "train"
    return CropDataset(
        [it.path for it in items], nsecs, random_crop=train, seed=seed, items=items,
        augment=augment if train else None, timbre=timbre if train else None,
    )  # fmt: skip
