"""On-disk layout of a tokenized dataset, written so that a killed run can always resume.

    OUT_DIR/
      manifest.json             the run: codec, checkpoint hash, window, n_q, inputs hash, ...
      shards/00000.safetensors  int16 codes `[n_q, T']` per clip, tensor name = clip index
      shards/00000.jsonl        the shard's index rows, then a {"done": true, ...} marker line
      index.jsonl               every row of every shard, merged when the run completes

A shard counts as finished only when its `.jsonl` exists, ends with the done marker, and the
marker's byte size matches the `.safetensors` file. Both files are written to a temporary name
and renamed into place (safetensors first), so a crash leaves either nothing, a shard without
a marker (redone on resume), or a finished shard; never a half-written file under a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT = "almtokenizer-studio/codes"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.jsonl"
SHARD_DIR = "shards"
# manifest keys that must agree for a rerun to resume into the same folder
RESUME_KEYS = (
    "format_version",
    "codec",
    "checkpoint_hash",
    "window",
    "n_q",
    "codebook_size",
    "shard_size",
    "num_clips",
    "inputs_sha256",
)


class ShardError(ValueError):
    """A shard folder that is missing, incomplete, corrupt or from another run."""


def shard_name(shard: int) -> str:
    return f"{shard:05d}"


def shard_paths(out_dir: Path, shard: int) -> tuple[Path, Path]:
    """(codes file, index part) of one shard."""
    base = Path(out_dir) / SHARD_DIR / shard_name(shard)
    return base.with_suffix(".safetensors"), base.with_suffix(".jsonl")


def inputs_sha256(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Any) -> None:
    """`write(tmp_path)` then fsync and rename onto `path` (same folder, so rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text))


def remove_stale_tmp(out_dir: Path) -> int:
    """Delete temporary files left by killed runs; returns how many. Call before any writer
    starts (rank 0 only, before the start barrier)."""
    n = 0
    for folder in (Path(out_dir), Path(out_dir) / SHARD_DIR):
        if folder.is_dir():
            for p in folder.glob(".*.tmp-*"):
                p.unlink(missing_ok=True)
                n += 1
    return n


# --- manifest -----------------------------------------------------------------------------------
def check_or_write_manifest(out_dir: Path, manifest: dict[str, Any], write: bool) -> None:
    """Compare with an existing manifest (resume) or, when `write`, create it.

    Raises:
        ShardError: the folder holds codes of another run (names the differing key).
    """
    path = Path(out_dir) / MANIFEST
    if path.is_file():
        old = read_manifest(out_dir)
        for key in RESUME_KEYS:
            if old.get(key) != manifest.get(key):
                raise ShardError(
                    f"{out_dir} holds codes of another run ({key}: {old.get(key)!r} there, "
                    f"{manifest.get(key)!r} now); use another --out or delete that folder"
                )
        if write and manifest.get("codes_hash") and not old.get("codes_hash"):
            # written before the codes hash existed: the same checkpoint wrote the same codes
            write_text_atomic(
                path, json.dumps({**old, "codes_hash": manifest["codes_hash"]}, indent=2,
                                 sort_keys=True)
            )  # fmt: skip
    elif write:
        write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise ShardError(f"{out_dir} is not a tokenized folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{path} is not valid JSON: {e}") from e
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ShardError(
            f"{path}: format {manifest.get('format')!r} v{manifest.get('format_version')!r} "
            f"is not {FORMAT!r} v{FORMAT_VERSION}"
        )
    return manifest


# --- shards -------------------------------------------------------------------------------------
def write_shard(
    out_dir: Path,
    shard: int,
    codes: dict[int, torch.Tensor],
    rows: list[dict[str, Any]],
    meta: dict[str, str],
) -> None:
    """Write one shard: codes `{clip index: int16 [n_q, T']}` then its index rows + marker."""
    codes_path, part_path = shard_paths(out_dir, shard)
    tensors = {str(k): v.to(torch.int16).contiguous() for k, v in codes.items()}
    if not tensors:  # safetensors needs at least one tensor; an all-error shard is legal
        tensors = {"__empty__": torch.zeros(0, dtype=torch.int16)}
    _atomic_write(codes_path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    marker = {
        "done": True,
        "shard": shard_name(shard),
        "clips": len(rows),
        "bytes": codes_path.stat().st_size,
        "sha256": _file_sha256(codes_path),
    }
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in [*rows, marker])
    write_text_atomic(part_path, text)


def read_part(part_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(rows, done marker or None) of one shard's index part."""
    rows: list[dict[str, Any]] = []
    marker = None
    try:
        lines = part_path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return [], None
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return rows, None
        if rec.get("done") is True:
            marker = rec
        else:
            rows.append(rec)
    return rows, marker


def shard_done(out_dir: Path, shard: int) -> bool:
    """True when the shard's marker exists and matches its codes file."""
    codes_path, part_path = shard_paths(out_dir, shard)
    if not (codes_path.is_file() and part_path.is_file()):
        return False
    rows, marker = read_part(part_path)
    return (
        marker is not None
        and marker.get("clips") == len(rows)
        and marker.get("bytes") == codes_path.stat().st_size
        # same-size damage (bit rot, a torn copy) shows only in the content hash
        and marker.get("sha256") in (None, _file_sha256(codes_path))
    )


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def merge_index(out_dir: Path, num_shards: int) -> Path:
    """Concatenate every finished shard's rows (in clip order) into `index.jsonl`.

    Raises:
        ShardError: some shard is not finished.
    """
    missing = [s for s in range(num_shards) if not shard_done(out_dir, s)]
    if missing:
        raise ShardError(f"{out_dir}: {len(missing)} shard(s) unfinished (e.g. {missing[:5]})")
    rows = [r for s in range(num_shards) for r in read_part(shard_paths(out_dir, s)[1])[0]]
    rows.sort(key=lambda r: r["clip"])
    path = Path(out_dir) / INDEX
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return path


def read_index(out_dir: Path) -> list[dict[str, Any]]:
    """Rows of the merged index; for an unfinished run, the rows of its finished shards."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    path = out_dir / INDEX
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for s in range(manifest["num_shards"]):
        if shard_done(out_dir, s):
            rows.extend(read_part(shard_paths(out_dir, s)[1])[0])
    return sorted(rows, key=lambda r: r["clip"])


def iter_codes(out_dir: Path, rows: list[dict[str, Any]]) -> Iterator[tuple[dict, torch.Tensor]]:
    """(row, codes int64 `[n_q, T']`) for every row without an error, opening each shard once."""
    out_dir = Path(out_dir)
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if not r.get("error"):
            by_shard.setdefault(int(r["shard"]), []).append(r)
    for shard in sorted(by_shard):
        codes_path, _ = shard_paths(out_dir, shard)
        try:
            with safe_open(str(codes_path), framework="pt") as f:
                for r in by_shard[shard]:
                    yield r, f.get_tensor(str(r["clip"])).long()
        except (SafetensorError, OSError) as e:
            raise ShardError(f"{codes_path} is not a readable shard: {e}") from e
