"""Continuous latents of many clips, batched, with an on-disk cache.

Per clip we keep the encoder's continuous latents (before quantization) as `frames [T, D]`
(time first) and their time-mean `pooled [D]`, which maps, centroids and probes use.

Cache: one `.npz` file per (codec, clip, settings), never pickle. The key holds
- the codec identity: `codec.checkpoint_hash` (content hash of the checkpoint folder) or, for
  unsaved models, a hash of the state dict and config;
- the file's absolute path, modification time (ns) and size;
- the window (None for codecs that ignore it, e.g. EnCodec) and `max_seconds`;
- codec-specific settings that change continuous latents: none today. EnCodec's bandwidth only
  selects how many codebooks quantize the latents, so it is deliberately not part of the key.
Any change gives a different key, hence a miss; the key is also stored inside the file and
checked on read, so a (vanishingly unlikely) name collision or a corrupt file is a miss too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from analysis.codec_ops import as_batch, codec_device, codec_identity, effective_window
from codec.audio import load_audio
from codec.models.base import Codec

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("cache/latents")
CACHE_VERSION = 1
DEFAULT_MAX_SECONDS = 30.0


@dataclass
class ClipLatents:
    """Latents of one clip.

    Attributes:
        frames: continuous latents `[T, D]` (float32).
        pooled: time-mean of `frames`, `[D]`.
        num_samples: clip length in samples at the codec's rate (for decoding back).
        path: source file, or None for a waveform given in memory.
        item: the dataset record this came from (e.g. a GoodSoundsItem), if any.
    """

    frames: np.ndarray
    pooled: np.ndarray
    num_samples: int
    path: Path | None = None
    item: Any = None


@dataclass
class LatentSet:
    """Latents of a list of clips for one codec at one window.

    Attributes:
        clips: one `ClipLatents` per input, in input order.
        codec_name: `codec.name`.
        codec_id: codec identity used in cache keys.
        window: effective window (None for codecs without one).
        hits, misses: cache statistics of the extraction that built this set.
    """

    clips: list[ClipLatents]
    codec_name: str
    codec_id: str
    window: int | None
    hits: int = 0
    misses: int = 0
    _pooled: np.ndarray | None = field(default=None, repr=False)

    @property
    def pooled(self) -> np.ndarray:
        """Pooled latents of every clip, `[N, D]`."""
        if self._pooled is None:
            self._pooled = np.stack([c.pooled for c in self.clips]).astype(np.float32)
        return self._pooled

    @property
    def items(self) -> list[Any]:
        """The dataset records (or paths) in order."""
        return [c.item if c.item is not None else c.path for c in self.clips]

    def labels(self, attribute: str) -> list[Any]:
        """`getattr(item, attribute)` for every clip (None where missing)."""
        return [getattr(c.item, attribute, None) for c in self.clips]

    def __len__(self) -> int:
        return len(self.clips)


def _item_path(item: Any) -> Path:
    path = item if isinstance(item, (str, os.PathLike)) else getattr(item, "path", None)
    if path is None:
        raise TypeError(f"cannot find a file path in {item!r} (need a path or an item with .path)")
    return Path(path)


def cache_key(
    codec_id: str, path: Path, window: int | None, max_seconds: float, extra: dict | None = None
) -> dict[str, Any]:
    """The full cache key of one clip (a JSON-serialisable dict)."""
    st = path.stat()
    return {
        "version": CACHE_VERSION,
        "codec": codec_id,
        "path": str(path.resolve()),
        "mtime_ns": st.st_mtime_ns,
        "size": st.st_size,
        "window": window,
        "max_seconds": float(max_seconds),
        "extra": extra or {},
    }


class LatentCache:
    """Folder of `.npz` files named by the SHA-256 of their key, grouped by codec identity."""

    def __init__(self, root: str | Path = DEFAULT_CACHE_DIR) -> None:
        self.root = Path(root)

    def _file(self, key: dict[str, Any]) -> Path:
        text = json.dumps(key, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        safe_codec = "".join(ch for ch in str(key["codec"]) if ch.isalnum() or ch in "-_")[:40]
        return self.root / (safe_codec or "codec") / f"{digest}.npz"

    def get(self, key: dict[str, Any]) -> ClipLatents | None:
        """The cached latents (without path/item) or None on a miss (absent, mismatched or
        corrupt file)."""
        f = self._file(key)
        if not f.is_file():
            return None
        try:
            with np.load(f, allow_pickle=False) as data:
                if str(data["key"]) != json.dumps(key, sort_keys=True):
                    return None
                frames = data["frames"].astype(np.float32)
                return ClipLatents(frames, frames.mean(0), int(data["num_samples"]))
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable cache file %s: %s", f, e)
            return None

    def put(self, key: dict[str, Any], frames: np.ndarray, num_samples: int) -> Path:
        """Write atomically (temporary file in the same folder, then rename)."""
        f = self._file(key)
        f.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{f.stem}.", suffix=".npz", dir=f.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(
                    out,
                    frames=frames.astype(np.float32),
                    num_samples=np.int64(num_samples),
                    key=np.array(json.dumps(key, sort_keys=True)),
                )
            os.replace(tmp, f)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return f


@torch.inference_mode()
def encode_batch(codec: Codec, wavs: torch.Tensor, window: int | None) -> list[np.ndarray]:
    """Continuous latents of a batch `[B, 1, N]` (equal lengths): B arrays `[T, D]`."""
    enc = codec.encode(wavs.to(codec_device(codec)), window)
    lat = enc.latents.detach().float().cpu()  # [B, D, T]
    return [lat[b].T.contiguous().numpy() for b in range(lat.shape[0])]


def encode_waveform(codec: Codec, wav: torch.Tensor, window: int | None = None) -> ClipLatents:
    """Latents of one waveform `[N]` or `[1, N]` (24 kHz) held in memory (not cached)."""
    x = as_batch(wav)
    if x.shape[0] != 1:
        raise ValueError(f"encode_waveform takes one clip, got a batch of {x.shape[0]}")
    codec.eval()
    frames = encode_batch(codec, x, effective_window(codec, window))[0]
    return ClipLatents(frames=frames, pooled=frames.mean(0), num_samples=int(x.shape[-1]))


def extract_latents(
    codec: Codec,
    items: Sequence[Any],
    window: int | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    batch_size: int = 8,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    progress: bool = True,
) -> LatentSet:
    """Continuous latents of every item (file paths or records with `.path`), cached.

    Clips are loaded with `codec.audio.load_audio` (mono, 24 kHz) and encoded in batches of
    clips of equal length (padding would change the latents of non-causal encoders).

    Args:
        codec: any Codec; put in eval mode.
        items: paths or records with a `.path` attribute (e.g. GoodSoundsItem).
        window: window size (ignored, and left out of the key, for codecs without one).
        cache_dir: cache folder; None disables the cache.
        batch_size: clips per encoder call.
        max_seconds: longest clip accepted (see `load_audio`).
        progress: show a tqdm bar.

    Returns:
        A LatentSet in input order with hit/miss counts.
    """
    codec.eval()
    win = effective_window(codec, window)
    ident = codec_identity(codec)
    cache = LatentCache(cache_dir) if cache_dir is not None else None
    paths = [_item_path(it) for it in items]
    results: list[ClipLatents | None] = [None] * len(paths)
    keys: list[dict[str, Any] | None] = [None] * len(paths)
    todo: list[int] = []
    for i, p in enumerate(paths):
        if cache is not None:
            keys[i] = cache_key(ident, p, win, max_seconds)
            hit = cache.get(keys[i])
            if hit is not None:
                hit.path, hit.item = p, _record(items[i])
                results[i] = hit
                continue
        todo.append(i)
    hits = len(paths) - len(todo)
    bar = tqdm(total=len(todo), desc=f"latents {codec.name}", disable=not progress or not todo)
    for start in range(0, len(todo), max(batch_size, 1) * 4):
        chunk = todo[start : start + max(batch_size, 1) * 4]
        wavs = {i: load_audio(paths[i], codec.sample_rate, max_seconds) for i in chunk}
        by_len: dict[int, list[int]] = {}
        for i in chunk:
            by_len.setdefault(int(wavs[i].shape[-1]), []).append(i)
        for n, idx in by_len.items():
            for b in range(0, len(idx), max(batch_size, 1)):
                part = idx[b : b + max(batch_size, 1)]
                batch = torch.stack([wavs[i] for i in part])  # [B, 1, N]
                for i, frames in zip(part, encode_batch(codec, batch, win)):
                    results[i] = ClipLatents(frames, frames.mean(0), n, paths[i], _record(items[i]))
                    if cache is not None and keys[i] is not None:
                        cache.put(keys[i], frames, n)
                bar.update(len(part))
    bar.close()
    log.info("%s latents: %d cached, %d encoded", codec.name, hits, len(todo))
    clips = [r for r in results if r is not None]
    return LatentSet(clips, codec.name, ident, win, hits=hits, misses=len(todo))


def _record(item: Any) -> Any:
    return None if isinstance(item, (str, os.PathLike)) else item
