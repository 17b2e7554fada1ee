"""What gets tokenized: the clip list of a dataset or folder, and batches of similar length."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from codec.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio

DATASETS = ("demo", "goodsounds", "fsd50k", "folder", "corpus")


@dataclass(frozen=True)
class ClipInput:
    """One clip to tokenize: its file and its name (path relative to the dataset root)."""

    path: Path
    name: str


def guess_dataset(path: Path) -> str:
    """ "goodsounds" for a folder with database.sqlite, "fsd50k" for one with
    FSD50K.ground_truth, "corpus" for one with manifest.jsonl (`codec.data.corpus`), else
    "folder"."""
    if (path / "database.sqlite").is_file():
        return "goodsounds"
    if (path / "FSD50K.ground_truth").is_dir():
        return "fsd50k"
    if (path / "manifest.jsonl").is_file():
        return "corpus"
    return "folder"


def list_inputs(
    dataset: str | None, path: str | Path | None, split: str = "all", max_clips: int | None = None
) -> list[ClipInput]:
    """The clips of `dataset` at `path` (None: guessed from the folder), in a fixed order;
    `max_clips` keeps a seeded subset (the same clips on every run, in the same order).

    Raises:
        ValueError / FileNotFoundError: unknown dataset or split, missing folder or metadata.
    """
    from codec.data import DEMO_ROOT, list_items

    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if path is None:
        if dataset != "demo":
            raise ValueError("--input is required (a dataset root or a folder of audio files)")
        root = DEMO_ROOT
    else:
        root = Path(path)
        if not root.exists():
            raise FileNotFoundError(f"input {root} does not exist")
        if not root.is_dir():
            raise ValueError(f"input {root} is not a folder")
    name = dataset or guess_dataset(root)
    items = list_items(name, None if path is None else root, split)
    if max_clips is not None and len(items) > max_clips:
        import random

        keep = sorted(random.Random(0).sample(range(len(items)), max_clips))
        items = [items[i] for i in keep]
    clips = []
    for it in items:
        p = Path(it.path)
        try:
            rel = p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = p.as_posix()
        clips.append(ClipInput(p, rel))
    return clips


def estimated_samples(path: Path) -> int:
    """Length at 24 kHz from the header only (0 when unreadable: the error shows on load)."""
    try:
        return int(audio_duration(path) * SAMPLE_RATE)
    except AudioError:
        return 0


def length_sorted_batches(
    indices: list[int], lengths: dict[int, int], batch_size: int
) -> list[list[int]]:
    """Batches of `indices` sorted by length, so that padding stays small."""
    order = sorted(indices, key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass
class LoadedClip:
    index: int
    wav: torch.Tensor | None  # [1, N] or None when it failed to load
    error: str | None


@dataclass
class ClipBatch:
    """Padded clips of one batch.

    Attributes:
        indices: global clip index per row (loaded clips only).
        wav: `[B, 1, N_max]` zero-padded, or None when no clip of the batch loaded.
        lengths: samples per clip before padding, `[B]`.
        errors: (clip index, message) of the clips that failed to load.
    """

    indices: list[int]
    wav: torch.Tensor | None
    lengths: list[int]
    errors: list[tuple[int, str]]


class ClipDataset(Dataset[LoadedClip]):
    """Whole clips as `[1, N]` float32 at 24 kHz; load failures are reported, not raised."""

    def __init__(self, clips: list[ClipInput], max_seconds: float = 600.0) -> None:
        self.clips = clips
        self.max_seconds = max_seconds

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> LoadedClip:
        try:
            wav = load_audio(self.clips[index].path, SAMPLE_RATE, max_seconds=self.max_seconds)
        except AudioError as e:
            return LoadedClip(index, None, str(e))
        return LoadedClip(index, wav, None)


def collate_clips(items: list[LoadedClip]) -> ClipBatch:
    ok = [it for it in items if it.wav is not None]
    errors = [(it.index, it.error or "unreadable") for it in items if it.wav is None]
    if not ok:
        return ClipBatch([], None, [], errors)
    lengths = [int(it.wav.shape[-1]) for it in ok]  # type: ignore[union-attr]
    wav = torch.zeros(len(ok), 1, max(lengths))
    for row, it in enumerate(ok):
        wav[row, :, : lengths[row]] = it.wav  # type: ignore[index]
    return ClipBatch([it.index for it in ok], wav, lengths, errors)
