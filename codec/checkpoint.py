"""Checkpoint folders: `model.safetensors` + `config.json`, strict loading, atomic writes.

A checkpoint folder holds:
    config.json        {"format_version": 1, "codec": "<name>", "model": {...}, "meta": {...}}
    model.safetensors  the state dict (tensors only; nothing is ever unpickled)

`load_checkpoint(cls, path)` builds `cls` from the config and loads the weights strictly; which
class reads a folder (its `codec` field) is the registry's answer (`codec.models.registry.
load_codec`). This module sits below the models: it knows a codec only as an `nn.Module` with
`name`, `config_dict()` and `from_config()`. Every failure raises `CheckpointError` naming the
file and the problem.

`save_codec` swaps a new folder in with two renames (`NAME` -> `.NAME.old-<pid>`, then the new
folder -> `NAME`); `recover_checkpoint` undoes a swap that a killed process left half done.
`swap_folder` is the project's one atomic folder swap (training checkpoints use it too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from codec.alloc_budget import AllocationBudget, AllocationBudgetError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# A model build may allocate this many times the weights file's values, plus a margin
# (temporaries, non-persistent buffers); more means config.json asks for another model.
BUILD_BUDGET_FACTOR = 2
BUILD_BUDGET_MARGIN = 1 << 24


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, of another version or mismatched."""


def pid_alive(pid: int) -> bool:
    """Whether another process `pid` runs. This process counts as not running: `save_codec`
    finishes or undoes its own swap before it returns, so a leftover with our pid is from an
    earlier process that had the same pid (e.g. a restarted container)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def _leftovers(folder: Path, kind: str) -> list[Path]:
    """`.NAME.<kind>-<pid>[-...]` siblings of `folder` written by processes no longer running."""
    prefix = f".{folder.name}.{kind}-"
    found = []
    try:
        siblings = list(folder.parent.iterdir())
    except OSError:  # no parent folder: nothing to recover
        return []
    for p in siblings:
        pid = p.name[len(prefix) :].split("-", 1)[0]
        if p.name.startswith(prefix) and pid.isdigit() and not pid_alive(int(pid)):
            found.append(p)
    return found


def recover_checkpoint(path: str | Path) -> Path:
    """Repair what a killed `save_codec` left beside `path`; returns `path`.

    Killed between its two renames, `save_codec` leaves the previous checkpoint only as
    `.NAME.old-<pid>`: when `NAME` is missing, the newest such folder of a process that is no
    longer running is renamed back. Then the other leftovers of dead processes (older
    `.NAME.old-<pid>`, half-written `.NAME.tmp-<pid>-*`) are removed. Folders of running
    processes are never touched (they may be mid-save).
    """
    folder = Path(path)
    if not folder.exists():
        old = sorted(_leftovers(folder, "old"), key=lambda p: p.stat().st_mtime)
        if old:
            os.replace(old[-1], folder)
            log.warning("recovered checkpoint %s from %s (interrupted save)", folder, old[-1].name)
    if folder.exists():
        for p in _leftovers(folder, "old") + _leftovers(folder, "tmp"):
            shutil.rmtree(p, ignore_errors=True)
    return folder


def read_config(path: str | Path) -> dict[str, Any]:
    """Read and validate `config.json` of a checkpoint folder."""
    folder = Path(path)
    if not folder.exists():
        recover_checkpoint(folder)
    if not folder.exists():
        raise CheckpointError(f"checkpoint {folder} does not exist")
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint {folder} is a file; expected a folder with {WEIGHTS_NAME} + {CONFIG_NAME}"
        )
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {CONFIG_NAME}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {e}") from e
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object")
    version = cfg.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not 1.0, not true
        raise CheckpointError(
            f"{cfg_path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    for key in ("codec", "model"):
        if key not in cfg:
            raise CheckpointError(f"{cfg_path}: missing key {key!r}")
    return cfg


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read `model.safetensors` of a checkpoint folder (safetensors only, never pickle)."""
    w_path = Path(path) / WEIGHTS_NAME
    if not w_path.is_file():
        raise CheckpointError(f"checkpoint {path} has no {WEIGHTS_NAME}")
    with open(w_path, "rb") as f:
        head = f.read(9)
    # safetensors starts with its header length (u64 LE, any first byte, 0x80 included) then "{"
    looks_safetensors = head[8:9] == b"{"
    if not looks_safetensors and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise CheckpointError(f"{w_path} looks like a pickle/zip file; only safetensors is read")
    try:
        return load_file(str(w_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{w_path} is not a readable safetensors file: {e}") from e


def _check_shapes(own: dict[str, tuple], got: dict[str, tuple], where: str) -> None:
    """Raise `CheckpointError` naming `where` unless the tensor names and shapes agree."""
    missing = sorted(set(own) - set(got))
    unexpected = sorted(set(got) - set(own))
    shapes = [f"{k}: file {got[k]} vs model {own[k]}" for k in own if k in got and got[k] != own[k]]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"shape mismatch in {len(shapes)} tensors (e.g. {shapes[:3]})")
        raise CheckpointError(f"{where} does not match the model config: " + "; ".join(parts))


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """`load_state_dict(strict=True)` with a message that names the file and the mismatch."""
    _check_shapes(_shapes(model.state_dict()), _shapes(state), where)
    model.load_state_dict(state, strict=True)


def _weights_numel(folder: Path) -> int:
    """Tensor values in the weights file, from its header (no tensor is read).

    Raises:
        CheckpointError: the file is missing or unreadable (as `read_weights` names it).
    """
    w_path = folder / WEIGHTS_NAME
    try:
        with safe_open(str(w_path), framework="pt", device="cpu") as f:
            shapes = [f.get_slice(k).get_shape() for k in f.keys()]  # noqa: SIM118
    except Exception:  # missing or damaged file: let read_weights name the problem
        read_weights(folder)
        raise CheckpointError(f"{w_path} is not a readable safetensors file") from None
    return sum(math.prod(s) for s in shapes)


def _build(cls: type[Any], model_cfg: Any, folder: Path) -> Any:
    """Build the model `config.json` describes, allocating at most about what its weights
    file holds (`BUILD_BUDGET_FACTOR` times plus `BUILD_BUDGET_MARGIN` values): a config
    edited to ask for a huge model is refused before anything large is allocated."""
    limit = BUILD_BUDGET_FACTOR * _weights_numel(folder) + BUILD_BUDGET_MARGIN
    where = folder / CONFIG_NAME
    try:
        with AllocationBudget(limit):
            return cls.from_config(model_cfg)
    except AllocationBudgetError as e:
        raise CheckpointError(
            f"{where}: the model config asks for a model larger than {folder / WEIGHTS_NAME} "
            f"holds ({e}); config and weights do not match"
        ) from None
    except (TypeError, ValueError, KeyError, RuntimeError, MemoryError, OverflowError) as e:
        # RuntimeError / MemoryError: sizes too large to allocate (torch's allocator)
        raise CheckpointError(f"{where}: invalid model config: {e}") from e


def load_checkpoint(cls: type[Any], path: str | Path) -> Any:
    """Build a `cls` (a `Codec` subclass) from `path/config.json` and load its weights strictly.

    Raises:
        CheckpointError: a missing, truncated or mismatched folder, or one that holds
            another codec than `cls.name`.
    """
    cfg = read_config(path)
    if cfg["codec"] != cls.name:
        raise CheckpointError(
            f"{Path(path) / CONFIG_NAME}: holds a {cfg['codec']!r} checkpoint, not {cls.name!r}"
        )
    model = _build(cls, cfg["model"], Path(path))
    load_state_strict(model, read_weights(path), str(Path(path) / WEIGHTS_NAME))
    model.eval()
    model.checkpoint_hash = checkpoint_hash(path)
    model.checkpoint_meta = cfg.get("meta", {})
    log.info("loaded %s from %s (hash %s)", cls.name, path, model.checkpoint_hash)
    return model


def save_codec(
    model: torch.nn.Module, path: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Write a checkpoint folder of `model` (a `Codec`) atomically: build it beside `path`,
    then swap it in.

    A crash at any moment leaves either the old folder or the new one, never a mix; killed
    between the two renames, the old one is left as `.NAME.old-<pid>`, which the next save or
    load puts back (`recover_checkpoint`).
    """
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{os.getpid()}-", dir=folder.parent))
    old = None
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME))
        cfg = {
            "format_version": FORMAT_VERSION,
            "codec": model.name,
            "model": model.config_dict(),
            "meta": meta or {},
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True))
        for f in tmp.iterdir():
            _fsync(f)
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        swap_folder(tmp, folder, old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def swap_folder(
    staging: Path, folder: Path, old: Path, sync_dir: Callable[[Path], None] | None = None
) -> None:
    """Put the complete folder `staging` in place of `folder`, atomically for readers of
    `folder`: two renames (`folder` -> `old`, `staging` -> `folder`), an fsync of the parent
    folder, then `old` is removed.

    A crash at any moment leaves `folder` complete (old or new), except between the two renames,
    when only `old` holds the previous folder: the callers' recovery (`recover_checkpoint`,
    `codec.training.state.recover`) renames it back. If the second rename fails, `old` is put
    back before the error propagates.

    Args:
        staging: the new folder, fully written and fsynced, on the same file system.
        folder: the name to swap it in as (need not exist).
        old: where the previous folder waits between the renames (a leftover is replaced).
        sync_dir: how to fsync the parent folder (default `fsync_dir`).
    """
    had = folder.exists()
    if had:
        if old.exists():
            shutil.rmtree(old)
        os.replace(folder, old)
    try:
        os.replace(staging, folder)
    except BaseException:
        if had and old.exists() and not folder.exists():
            os.replace(old, folder)  # the second rename failed: put the previous folder back
        raise
    (sync_dir or fsync_dir)(folder.parent)
    if had:
        shutil.rmtree(old, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """fsync a folder (its entries' renames become durable); best effort: some file systems
    refuse to open or sync folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def module_hash(module: torch.nn.Module) -> str:
    """16 hex digits of sha256 over a module's named tensors (names and values): a content key
    for caches, whatever file the weights came from."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def checkpoint_hash(path: str | Path) -> str:
    """Short content hash of a checkpoint folder (weights + config), for cache keys."""
    h = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        p = Path(path) / name
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
