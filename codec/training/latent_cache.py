"""A disk cache of the frozen autoencoder's latents, so a stage-2 step never runs its encoder.

For every training clip the cache holds `crops` fixed crops (the training dataset's seeded crops
of epochs 0..crops-1, `cache_seconds` long) with their patchify frames: `wav` `[M, 1, N]` and
`frames` `[M, d, T]` (N = T * hop), float16, in safetensors shards under

    <root>/<frontend weights hash>-<data key>/shard_00000.safetensors ... + cache.json

keyed by the autoencoder's weight hash (`EncodecFrontend.weights_hash`) and by everything that
chooses the crops (dataset, path, split, subset, seed, crop length and count), so a new
autoencoder or other data never reads stale latents. `cache.json` is written last: a folder
without it is an interrupted build and is rebuilt.

`LatentCropDataset` serves random sub-crops (frame-aligned, seeded by (seed, epoch, index), so a
resumed run sees the same batches) of `nsecs` of these crops as `(wav [1, n * hop], frames
[d, n])`, which `ALMTokenizer.forward(wav, w, 2, frames=...)` takes instead of encoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
SHARD_CLIPS = 512
INFO_NAME = "cache.json"


@dataclass(frozen=True)
class CacheKey:
    """What selects the cached crops (hashed into the folder name with the weights hash)."""

    dataset: str
    dataset_path: str
    split: str
    subset_size: int | None
    seed: int
    cache_seconds: float
    crops: int
    format: int = CACHE_FORMAT

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_folder(root: str | Path, weights_hash: str, key: CacheKey) -> Path:
    """`<root>/<weights_hash>-<key digest>`."""
    return Path(root) / f"{weights_hash}-{key.digest()}"


def is_complete(folder: Path) -> bool:
    return (folder / INFO_NAME).is_file()


@torch.no_grad()
def build_latent_cache(
    encoder: torch.nn.Module,
    dataset: Dataset,
    crops: int,
    folder: Path,
    hop_length: int,
    batch_size: int = 16,
    info: dict | None = None,
) -> Path:
    """Encode `crops` passes of `dataset` (items `[1, N]`, `set_epoch(e)` drawing new crops)
    with `encoder` (`[B, 1, N]` -> `[B, d, N / hop]`) into `folder`, atomically.

    Returns `folder`; an existing complete cache is kept as it is.
    """
    from tqdm import tqdm

    if is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{os.getpid()}-", dir=folder.parent))
    try:
        n_items = len(dataset)  # type: ignore[arg-type]
        order = [(e, i) for e in range(crops) for i in range(n_items)]
        wavs: list[torch.Tensor] = []
        frames: list[torch.Tensor] = []
        shard = 0
        for start in tqdm(range(0, len(order), batch_size), desc="latent cache", unit="batch"):
            chunk = order[start : start + batch_size]
            batch = []
            for e, i in chunk:
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(e)
                batch.append(dataset[i])
            wav = torch.stack(batch)  # (B, 1, N)
            rem = wav.shape[-1] % hop_length
            if rem:  # whole frames only: N = T * hop
                wav = wav[..., : wav.shape[-1] - rem]
            e_frames = encoder(wav)
            wavs.append(wav.half())
            frames.append(e_frames.half())
            if sum(w.shape[0] for w in wavs) >= SHARD_CLIPS:
                _save_shard(tmp, shard, wavs, frames)
                shard, wavs, frames = shard + 1, [], []
        if wavs:
            _save_shard(tmp, shard, wavs, frames)
            shard += 1
        meta = {"clips": len(order), "shards": shard, "hop_length": hop_length, **(info or {})}
        (tmp / INFO_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
        if folder.exists():  # an interrupted build: replace it
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("latent cache: %d crops in %s", len(order), folder)
    return folder


def _save_shard(
    folder: Path, index: int, wavs: list[torch.Tensor], frames: list[torch.Tensor]
) -> None:
    tensors = {"wav": torch.cat(wavs).contiguous(), "frames": torch.cat(frames).contiguous()}
    save_file(tensors, str(folder / f"shard_{index:05d}.safetensors"))


def load_latent_cache(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All crops of a complete cache: wav `[M, 1, N]`, frames `[M, d, T]` (float16).

    Raises:
        FileNotFoundError: the cache is missing or incomplete (no cache.json).
        ValueError: a shard is missing or its shapes disagree.
    """
    if not is_complete(folder):
        raise FileNotFoundError(f"latent cache {folder} is missing or incomplete")
    info = json.loads((folder / INFO_NAME).read_text())
    wavs, frames = [], []
    for k in range(int(info["shards"])):
        path = folder / f"shard_{k:05d}.safetensors"
        if not path.is_file():
            raise ValueError(f"latent cache {folder}: {path.name} is missing")
        t = load_file(str(path))
        wavs.append(t["wav"])
        frames.append(t["frames"])
    wav, fr = torch.cat(wavs), torch.cat(frames)
    if wav.shape[0] != info["clips"] or wav.shape[-1] != fr.shape[-1] * info["hop_length"]:
        raise ValueError(
            f"latent cache {folder}: {wav.shape[0]} crops of {wav.shape[-1]} samples and "
            f"{fr.shape[-1]} frames disagree with cache.json ({info['clips']} crops)"
        )
    return wav, fr


class LatentCropDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Frame-aligned random sub-crops of cached crops.

    Args:
        wav: `[M, 1, N]` cached waveforms (N = T * hop).
        frames: `[M, d, T]` their patchify frames.
        num_frames: n, frames per item (the item's waveform is n * hop samples).
        hop_length: samples per frame.
        seed: offsets depend only on (seed, epoch, index).
    """

    def __init__(
        self,
        wav: torch.Tensor,
        frames: torch.Tensor,
        num_frames: int,
        hop_length: int,
        seed: int = 0,
    ) -> None:
        if wav.shape[0] != frames.shape[0] or wav.shape[-1] != frames.shape[-1] * hop_length:
            raise ValueError(
                f"wav {tuple(wav.shape)} and frames {tuple(frames.shape)} do not align at hop "
                f"{hop_length}"
            )
        if not 1 <= num_frames <= frames.shape[-1]:
            raise ValueError(f"num_frames must be in [1, {frames.shape[-1]}], got {num_frames}")
        self.wav, self.frames = wav, frames
        self.num_frames, self.hop_length, self.seed = num_frames, hop_length, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.wav.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(wav [1, n * hop], frames [d, n])`, float32."""
        span = self.frames.shape[-1] - self.num_frames
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        t0 = rng.randint(0, span) if span > 0 else 0
        fr = self.frames[index, :, t0 : t0 + self.num_frames].float()
        h = self.hop_length
        wav = self.wav[index, :, t0 * h : (t0 + self.num_frames) * h].float()
        return wav, fr


def frame_statistics(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std `[d]` of `frames` `[M, d, T]` (float64 accumulation)."""
    count = frames.shape[0] * frames.shape[2]
    total = torch.zeros(frames.shape[1], dtype=torch.float64)
    for chunk in frames.split(256):
        total += chunk.double().sum((0, 2))
    mean = total / count
    sq = torch.zeros_like(total)
    for chunk in frames.split(256):
        sq += (chunk.double() - mean[None, :, None]).pow(2).sum((0, 2))
    return mean.float(), (sq / max(count - 1, 1)).sqrt().float()
