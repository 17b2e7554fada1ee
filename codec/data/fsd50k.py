"""FSD50K (MTG-UPF) loader, for codec training.

Layout (see shared data.md)::

    root/FSD50K.dev_audio/<fname>.wav        train + val
    root/FSD50K.eval_audio/<fname>.wav       test
    root/FSD50K.ground_truth/dev.csv         fname,labels,mids,split  (split: train or val)
    root/FSD50K.ground_truth/eval.csv        fname,labels,mids
    root/FSD50K.ground_truth/vocabulary.csv  no header: index,label,mid
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from codec.data.crops import subset

logger = logging.getLogger(__name__)

FSD50K_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FSD50KItem:
    """One clip with its labels (class names) and mids (AudioSet ids), same order."""

    path: Path
    fname: str
    labels: tuple[str, ...]
    mids: tuple[str, ...]
    split: str


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: FSD50K ground-truth file not found")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (has {reader.fieldnames})")
        return list(reader)


def _split_field(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def load_fsd50k(
    root: str | Path, split: str, subset_size: int | None = None, seed: int = 0
) -> list[FSD50KItem]:
    """List the clips of one FSD50K split.

    Args:
        root: the folder holding FSD50K.dev_audio/, FSD50K.eval_audio/, FSD50K.ground_truth/.
        split: "train" or "val" (from dev.csv) or "test" (eval.csv).
        subset_size: keep a seeded random subset of this many clips (in csv order).
        seed: seed of the subset.

    Returns:
        Items in csv order; clips whose file is missing are skipped with one warning.

    Raises:
        ValueError: unknown split, bad csv, or no clip found. FileNotFoundError: no csv.
    """
    if split not in FSD50K_SPLITS:
        raise ValueError(f"FSD50K split must be one of {FSD50K_SPLITS}, got {split!r}")
    root = Path(root)
    gt = root / "FSD50K.ground_truth"
    if split == "test":
        rows = _read_csv(gt / "eval.csv", ("fname", "labels", "mids"))
        audio_dir = root / "FSD50K.eval_audio"
    else:
        rows = _read_csv(gt / "dev.csv", ("fname", "labels", "mids", "split"))
        rows = [r for r in rows if (r["split"] or "").strip() == split]
        audio_dir = root / "FSD50K.dev_audio"
    items: list[FSD50KItem] = []
    missing = 0
    for row in rows:
        fname = row["fname"].strip()
        path = audio_dir / f"{fname}.wav"
        if not path.is_file():
            missing += 1
            continue
        labels, mids = _split_field(row["labels"]), _split_field(row["mids"])
        items.append(FSD50KItem(path=path, fname=fname, labels=labels, mids=mids, split=split))
    if missing:
        logger.warning("%s: skipped %d %s clips whose file is missing", audio_dir, missing, split)
    if not items:
        raise ValueError(f"{root}: no FSD50K {split} clips found under {audio_dir}")
    return subset(items, subset_size, seed)


def load_fsd50k_vocabulary(root: str | Path) -> list[tuple[int, str, str]]:
    """The 200 classes as (index, label, mid) from vocabulary.csv (which has no header)."""
    path = Path(root) / "FSD50K.ground_truth" / "vocabulary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: FSD50K vocabulary not found")
    out: list[tuple[int, str, str]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 3 or not row[0].strip().isdigit():
                raise ValueError(f"{path}:{lineno}: expected index,label,mid, got {row}")
            out.append((int(row[0]), row[1].strip(), row[2].strip()))
    return out
