"""Code shards -> the LM's training crops and held-out clips.

Each entry of `data.shards` is a folder written by `python -m codec.tokenizer encode` (it holds
`manifest.json`) or a folder of such folders (e.g. `work_dirs/tokens/alm_w3/{train,val}`).
Every folder must come from the same tokenizer (`TokenizerRecord`); the codes of all clips are
read into memory as int16 `[n_q, T]` (EnCodec 1.5 kbps: 300 bytes per second of audio).

The held-out split follows what the shards carry. A folder tokenized with `--split train` is
training data, one with `--split val` or `--split test` is held out: the project's own grouped
split (by sound, by uploader, by source file; `codec.data`). A folder tokenized with
`--split all` is split here by a hash of each clip's source key, taken from its index row's
`name` (the path relative to the dataset root): the name itself (`group_by: clip`) or its
parent folder (`group_by: folder`, e.g. every take of one recording session). The hash depends
only on (split_seed, key), so adding clips or changing the training seed never moves a clip.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from torch.utils.data import Dataset

from codec.lm.record import TokenizerRecord
from codec.tokenizer.shards import MANIFEST, ShardError, iter_codes, read_index, read_manifest

log = logging.getLogger(__name__)
TRAIN_SPLITS = ("train",)
HELD_OUT_SPLITS = ("val", "test")


@dataclass
class Clip:
    """The codes of one tokenized clip: `codes` int16 `[n_q, T]`."""

    name: str
    path: str
    folder: str
    codes: torch.Tensor

    @property
    def frames(self) -> int:
        return int(self.codes.shape[-1])


@dataclass
class ShardData:
    """Training and held-out clips of some shard folders, and their tokenizer."""

    record: TokenizerRecord
    train: list[Clip]
    held_out: list[Clip]
    folders: list[Path]


def find_shard_folders(entry: str | Path) -> list[Path]:
    """`entry` if it is a tokenized folder, else its tokenized sub-folders (sorted).

    Raises:
        ShardError: neither (names the folder).
    """
    root = Path(entry)
    if (root / MANIFEST).is_file():
        return [root]
    if not root.is_dir():
        raise ShardError(f"{root} does not exist")
    subs = sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())
    if not subs:
        raise ShardError(f"{root} holds no {MANIFEST} (nor do its sub-folders): not tokenized")
    return subs


def source_key(name: str, group_by: str) -> str:
    """The unit held out together: the clip's name, or its parent folder."""
    if group_by == "clip":
        return name
    if group_by == "folder":
        return str(PurePosixPath(name).parent)
    raise ValueError(f"group_by must be 'clip' or 'folder', got {group_by!r}")


def is_held_out(key: str, fraction: float, split_seed: int) -> bool:
    """A stable draw: True for about `fraction` of all keys, the same on every machine."""
    digest = hashlib.sha1(f"{split_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < fraction


def load_shards(
    entries: list[str],
    held_out_fraction: float = 0.1,
    group_by: str = "clip",
    split_seed: int = 0,
    train_fraction: float = 1.0,
) -> ShardData:
    """Read every clip of the shard folders of `entries` and split them (module docstring);
    keep a stable `train_fraction` of the training clips (the held-out clips stay whole).

    Raises:
        ShardError: a missing or unreadable folder, folders of different tokenizers, a clip in
            both splits, or no clip on one side.
    """
    folders = [f for e in entries for f in find_shard_folders(e)]
    if not folders:
        raise ShardError("no shard folder given")
    record: TokenizerRecord | None = None
    train: list[Clip] = []
    held_out: list[Clip] = []
    for folder in folders:
        manifest = read_manifest(folder)
        rec = TokenizerRecord.from_manifest(manifest)
        if record is None:
            record = rec
        else:
            record.check_same(rec, f"the shards in {folder}")
        split = manifest.get("split") or "all"
        n_train, n_held = len(train), len(held_out)
        for row, codes in iter_codes(folder, read_index(folder)):
            if codes.shape[0] != rec.n_q or codes.shape[-1] < 1:
                continue  # a clip too short for one frame
            clip = Clip(
                str(row["name"]),
                str(row.get("path", row["name"])),
                str(folder),
                codes.to(torch.int16),
            )
            if split in HELD_OUT_SPLITS:
                held_out.append(clip)
            elif split in TRAIN_SPLITS:
                train.append(clip)
            elif is_held_out(source_key(clip.name, group_by), held_out_fraction, split_seed):
                held_out.append(clip)
            else:
                train.append(clip)
        log.info(
            "%s (split %s): %d training, %d held-out clips",
            folder,
            split,
            len(train) - n_train,
            len(held_out) - n_held,
        )
    assert record is not None
    _check_disjoint(train, held_out)
    if train_fraction < 1:
        # nested: the clips kept at a fraction are kept at every larger one (a data-size curve)
        kept = [c for c in train if is_held_out("train:" + c.name, train_fraction, split_seed)]
        log.info(
            "data.train_fraction %g: %d of %d training clips", train_fraction, len(kept), len(train)
        )
        train = kept
    if not train:
        raise ShardError(f"no training clips in {', '.join(map(str, folders))}")
    if not held_out:
        raise ShardError(
            f"no held-out clips in {', '.join(map(str, folders))}: add a folder tokenized with "
            "--split val, or raise data.held_out_fraction"
        )
    return ShardData(record, train, held_out, folders)


def _check_disjoint(train: list[Clip], held_out: list[Clip]) -> None:
    """Refuse a clip that sits in both splits (e.g. a `--split all` folder next to a `--split
    val` folder of the same dataset)."""
    seen = {os.path.normpath(c.path) for c in train}
    both = [c.path for c in held_out if os.path.normpath(c.path) in seen]
    if both:
        raise ShardError(
            f"{len(both)} held-out clip(s) are also training clips (e.g. {both[0]}); give "
            "folders of disjoint splits"
        )


def pad_frames(codes: torch.Tensor, frames: int, pad_id: int) -> torch.Tensor:
    """`[n_q, T]` -> int64 `[n_q, frames]`: cut, or filled with `pad_id` after the end."""
    out = torch.full((codes.shape[0], frames), pad_id, dtype=torch.long)
    n = min(frames, codes.shape[-1])
    out[:, :n] = codes[:, :n]
    return out


class CropDataset(Dataset[torch.Tensor]):
    """Crops of `context` frames of the training clips, as int64 `[n_q, context]`.

    A clip of T frames gives ceil(T / context) items per epoch (so every frame is seen about
    once an epoch, whatever the clip lengths), each cut at an offset drawn from (seed, epoch,
    item): the same crops after a resume, in any worker. Shorter clips are padded with
    `pad_id`, which the loss skips.
    """

    def __init__(self, clips: list[Clip], context: int, pad_id: int, seed: int = 0) -> None:
        if context < 1:
            raise ValueError(f"context must be >= 1 frame, got {context}")
        self.clips, self.context, self.pad_id, self.seed = clips, context, pad_id, seed
        self.owner = [i for i, c in enumerate(clips) for _ in range(-(-c.frames // context))]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index: int) -> torch.Tensor:
        codes = self.clips[self.owner[index]].codes
        span = codes.shape[-1] - self.context
        offset = 0
        if span > 0:
            rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_033 + index)
            offset = rng.randint(0, span)
        return pad_frames(codes[:, offset:], self.context, self.pad_id)


def held_out_chunks(clips: list[Clip], context: int, pad_id: int) -> list[torch.Tensor]:
    """Every held-out clip cut into consecutive chunks of at most `context` frames, each as
    int64 `[n_q, context]` padded with `pad_id`: every code is scored exactly once."""
    out = []
    for c in clips:
        for start in range(0, c.frames, context):
            out.append(pad_frames(c.codes[:, start:], context, pad_id))
    return out


def sample_chunks(
    clips: list[Clip], context: int, pad_id: int, limit: int | None, seed: int
) -> list[torch.Tensor]:
    """The chunks (`held_out_chunks`) of clips taken in a seeded order until `limit` chunks
    (None: all clips in their order); only the clips needed are cut."""
    if limit is None:
        return held_out_chunks(clips, context, pad_id)
    order = list(range(len(clips)))
    random.Random(seed).shuffle(order)
    out: list[torch.Tensor] = []
    for i in order:
        out += held_out_chunks([clips[i]], context, pad_id)[: limit - len(out)]
        if len(out) >= limit:
            break
    return out
