"""Encode a clip list into code shards (resumable, batched, torch.distributed), and decode back.

Clip i belongs to shard i // shard_size; under torch.distributed rank r owns the shards s with
s % world_size == r, so ranks work on disjoint clips and resuming with another world size still
finds the same shards. Within a shard, clips are batched by similar length, zero-padded, and the
codes of each clip are trimmed to `codec.num_frames(n, window)` frames.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from codec.audio import save_audio
from codec.models.base import Codec, codes_hash_of
from codec.tokenizer.inputs import (
    ClipBatch,
    ClipDataset,
    ClipInput,
    collate_clips,
    estimated_samples,
    length_sorted_batches,
)
from codec.tokenizer.shards import (
    FORMAT,
    FORMAT_VERSION,
    ShardError,
    check_or_write_manifest,
    inputs_sha256,
    iter_codes,
    merge_index,
    read_index,
    read_manifest,
    remove_stale_tmp,
    shard_done,
    shard_name,
    write_shard,
)

log = logging.getLogger(__name__)
INT16_CODES = 1 << 15


@dataclass
class EncodeSummary:
    """What one rank did. `seconds` is this rank's wall time (listing excluded)."""

    rank: int
    world_size: int
    num_shards: int
    shards_written: int
    shards_skipped: int
    clips: int
    errors: int
    audio_seconds: float
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else 0.0


@dataclass
class DecodeSummary:
    clips: int
    audio_seconds: float
    seconds: float
    files: list[Path]


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _broadcast_error(message: str | None) -> str | None:
    """Rank 0's error message, on every rank (so all ranks fail together, none hangs)."""
    if not (dist.is_available() and dist.is_initialized()):
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def build_manifest(
    codec: Codec, window: int | None, clips: list[ClipInput], shard_size: int, source: dict
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "codec": codec.name,
        "checkpoint_hash": str(getattr(codec, "checkpoint_hash", "unsaved")),
        "codes_hash": codes_hash_of(codec),  # equal for checkpoints that write the same codes
        "weights_source": _weights_source(codec, source),
        "window": window,
        "bandwidth": getattr(codec, "bandwidth", None),
        "n_q": codec.num_codebooks,
        "codebook_size": codec.codebook_size,
        "frame_rate": codec.frame_rate(window),
        "bitrate": codec.bitrate(window),
        "sample_rate": codec.sample_rate,
        "dtype": "int16",
        "shard_size": shard_size,
        "num_clips": len(clips),
        "num_shards": math.ceil(len(clips) / shard_size),
        "inputs_sha256": inputs_sha256([c.name for c in clips]),
        **{k: (str(v) if v is not None else None) for k, v in source.items()},
    }


def _weights_source(codec: Codec, source: dict) -> str:
    if source.get("checkpoint"):
        return f"checkpoint:{source['checkpoint']}"
    if source.get("encodec_weights"):
        return f"official:{source['encodec_weights']}"
    return str(getattr(codec, "weights_source", "unknown"))


def encode_dataset(
    codec: Codec,
    clips: list[ClipInput],
    out_dir: str | Path,
    *,
    window: int | None,
    shard_size: int = 2000,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    autocast: bool = True,
    max_seconds: float = 600.0,
    source: dict[str, Any] | None = None,
    progress: bool = True,
) -> EncodeSummary:
    """Write the codes of every clip as shards under `out_dir` (see `codec.tokenizer.shards`).

    Finished shards are skipped, so rerunning after a crash resumes. Under torch.distributed
    each rank encodes its own shards and rank 0 merges the index at the end. On CUDA the
    encoder runs under bf16 autocast (the RVQ nearest-neighbour search stays float32 where the
    backend does so). Clips that fail to load get an index row with "error" and no codes.

    Raises:
        ShardError: `out_dir` holds codes of another run.
        ValueError: bad arguments, or a codebook too large for int16 codes.
    """
    if shard_size < 1 or batch_size < 1 or num_workers < 0:
        raise ValueError("shard_size and batch_size must be >= 1 and num_workers >= 0")
    if not clips:
        raise ValueError("nothing to tokenize: the input has no audio clips")
    if codec.codebook_size > INT16_CODES:
        raise ValueError(f"codebook size {codec.codebook_size} does not fit int16 codes")
    out_dir = Path(out_dir)
    rank, world = _rank_world()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    codec = codec.eval().to(device)
    manifest = build_manifest(codec, window, clips, shard_size, source or {})
    error = None
    if rank == 0:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_tmp(out_dir)
            check_or_write_manifest(out_dir, manifest, write=True)
        except (ShardError, OSError) as e:
            error = str(e)
    error = _broadcast_error(error)
    if error:
        raise ShardError(error)

    t0 = time.perf_counter()
    num_shards = manifest["num_shards"]
    mine = [s for s in range(num_shards) if s % world == rank]
    pending = [s for s in mine if not shard_done(out_dir, s)]
    lengths, batches, remaining = {}, [], {}
    for s in pending:
        idx = list(range(s * shard_size, min((s + 1) * shard_size, len(clips))))
        lengths.update({i: estimated_samples(clips[i].path) for i in idx})
        batches += length_sorted_batches(idx, lengths, batch_size)
        remaining[s] = len(idx)
    summary = EncodeSummary(rank, world, num_shards, 0, len(mine) - len(pending), 0, 0, 0.0, 0.0)
    if summary.shards_skipped:
        log.info("rank %d: %d finished shard(s) skipped", rank, summary.shards_skipped)
    loader = DataLoader(
        ClipDataset(clips, max_seconds),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate_clips,
        pin_memory=device.type == "cuda",
    )
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if autocast and device.type == "cuda"
        else nullcontext()
    )
    fixed = {"window": window, "n_q": manifest["n_q"], "codec": codec.name}
    fixed["checkpoint_hash"] = manifest["checkpoint_hash"]
    sr = codec.sample_rate
    codes_by: dict[int, dict[int, torch.Tensor]] = {s: {} for s in pending}
    rows_by: dict[int, list[dict[str, Any]]] = {s: [] for s in pending}
    meta = {"format": FORMAT, "checkpoint_hash": manifest["checkpoint_hash"], "window": str(window)}
    bar = tqdm(
        total=sum(remaining.values()),
        unit="clip",
        desc=f"encode rank {rank}" if world > 1 else "encode",
        disable=not progress,
        dynamic_ncols=True,
    )
    with torch.inference_mode():
        for batch in loader:
            done = _encode_batch(codec, batch, window, device, amp)
            for i, code, n in done:
                s = i // shard_size
                codes_by[s][i] = code
                rows_by[s].append(_row(clips[i], i, s, fixed, n=n, sr=sr, frames=code.shape[-1]))
                summary.audio_seconds += n / codec.sample_rate
            for i, msg in batch.errors:
                s = i // shard_size
                rows_by[s].append(_row(clips[i], i, s, fixed, error=msg))
                log.warning("skipping %s: %s", clips[i].path, msg)
            summary.errors += len(batch.errors)
            finished = batch.indices + [i for i, _ in batch.errors]
            for i in finished:
                remaining[i // shard_size] -= 1
            for s in sorted({i // shard_size for i in finished}):
                if remaining[s] == 0:
                    rows = sorted(rows_by.pop(s), key=lambda r: r["clip"])
                    write_shard(out_dir, s, codes_by.pop(s), rows, {**meta, "shard": shard_name(s)})
                    summary.shards_written += 1
            summary.clips += len(finished)
            bar.update(len(finished))
    bar.close()
    summary.seconds = time.perf_counter() - t0
    _barrier()
    if rank == 0:
        merge_index(out_dir, num_shards)
    _barrier()
    return summary


def _encode_batch(
    codec: Codec, batch: ClipBatch, window: int | None, device: torch.device, amp: Any
) -> list[tuple[int, torch.Tensor, int]]:
    """(clip index, int16 codes `[n_q, T_i]` on CPU, samples) for every loaded clip."""
    if batch.wav is None:
        return []
    wav = batch.wav.to(device, non_blocking=True)
    with amp:
        codes = codec.encode(wav, window).codes  # [B, n_q, T]
    codes = codes.to("cpu", torch.int16)
    out = []
    for row, (i, n) in enumerate(zip(batch.indices, batch.lengths)):
        t = codec.num_frames(n, window)
        if t > codes.shape[-1]:
            raise RuntimeError(
                f"{codec.name} returned {codes.shape[-1]} frames for {wav.shape[-1]} samples "
                f"but num_frames({n}) = {t}"
            )
        out.append((i, codes[row, :, :t].clone(), n))
    return out


def _row(
    clip: ClipInput,
    index: int,
    shard: int,
    fixed: dict[str, Any],
    *,
    n: int = 0,
    sr: int = 24000,
    frames: int = 0,
    error: str | None = None,
) -> dict[str, Any]:
    row = {
        "clip": index,
        "shard": shard_name(shard),
        "name": clip.name,
        "path": str(clip.path),
        "num_samples": n,
        "duration": n / sr,
        "frames": frames,
        **fixed,
    }
    if error is not None:
        row["error"] = error
    return row


# --- decode ------------------------------------------------------------------------------------
def check_codec_for_shards(manifest: dict[str, Any], codec: Codec) -> None:
    """Refuse a codec other than the one that wrote the codes.

    Another checkpoint whose codes hash is the manifest's (the same encoder and codebooks, e.g.
    a retrained decoder) decodes them too.

    Raises:
        ShardError: another codec type, checkpoint (and codes) hash or codebook size.
    """
    expected = manifest.get("checkpoint_hash")
    actual = str(getattr(codec, "checkpoint_hash", "unsaved"))
    if manifest.get("codec") != codec.name:
        raise ShardError(f"shards were written by {manifest.get('codec')!r}, not {codec.name!r}")
    same_codes = bool(manifest.get("codes_hash")) and manifest["codes_hash"] == codes_hash_of(codec)
    if expected != actual and not same_codes:
        raise ShardError(
            f"shards were written with checkpoint hash {expected}, this model has {actual}; "
            "decode with the checkpoint that encoded them"
        )
    if manifest.get("codebook_size") != codec.codebook_size:
        raise ShardError("codebook size of the shards and of the model differ")


def iter_decoded(
    out_dir: str | Path, codec: Codec, rows: list[dict[str, Any]] | None = None
) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """(row, waveform `[1, 1, N]`) per clip: exactly `codec.decode_codes(codes, window, N)`."""
    manifest = read_manifest(Path(out_dir))
    rows = read_index(Path(out_dir)) if rows is None else rows
    window = manifest.get("window")
    device = next(codec.parameters()).device
    with torch.inference_mode():
        for row, codes in iter_codes(Path(out_dir), rows):
            wav = codec.decode_codes(codes[None].to(device), window, row["num_samples"])
            yield row, wav.float().cpu()


def output_names(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Relative wav path per clip: its name with a .wav suffix (clip index added on clashes)."""
    names = {r["clip"]: str(Path(r["name"]).with_suffix(".wav")) for r in rows}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {
        c: (n if counts[n] == 1 else str(Path(n).with_suffix("")) + f"__{c}.wav")
        for c, n in names.items()
    }


def decode_shards(
    out_dir: str | Path,
    codec: Codec,
    wav_dir: str | Path,
    limit: int | None = None,
    progress: bool = True,
) -> DecodeSummary:
    """Write every clip of a tokenized folder back to `wav_dir/<name>.wav` (16-bit PCM)."""
    manifest = read_manifest(Path(out_dir))
    check_codec_for_shards(manifest, codec)
    codec.eval()
    rows = [r for r in read_index(Path(out_dir)) if not r.get("error")]
    if limit is not None:
        rows = rows[:limit]
    names = output_names(rows)
    t0, files, audio = time.perf_counter(), [], 0.0
    for row, wav in tqdm(
        iter_decoded(out_dir, codec, rows), total=len(rows), unit="clip", desc="decode",
        disable=not progress, dynamic_ncols=True,
    ):  # fmt: skip
        files.append(save_audio(Path(wav_dir) / names[row["clip"]], wav[0], codec.sample_rate))
        audio += row["num_samples"] / codec.sample_rate
    return DecodeSummary(len(files), audio, time.perf_counter() - t0, files)
