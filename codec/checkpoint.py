"""Checkpoint folders: `model.safetensors` + `config.json`, strict loading, atomic writes.

A checkpoint folder holds:
    config.json        {"format_version": 1, "codec": "<name>", "model": {...}, "meta": {...}}
    model.safetensors  the state dict (tensors only; nothing is ever unpickled)

Codecs register their class under their `name` with `register_codec`; `load_codec` dispatches
on the `codec` field. Every failure raises `CheckpointError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from codec.base import Codec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_REGISTRY: dict[str, type[Codec]] = {}


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, of another version or mismatched."""


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Class decorator: make `cls` loadable by `load_codec` under `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def _ensure_registered() -> None:
    # Importing the backends registers them; done lazily to keep import order free.
    import codec.almtokenizer  # noqa: F401
    import codec.encodec  # noqa: F401


def read_config(path: str | Path) -> dict[str, Any]:
    """Read and validate `config.json` of a checkpoint folder."""
    folder = Path(path)
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
    if version != FORMAT_VERSION:
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


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """`load_state_dict(strict=True)` with a message that names the file and the mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"shape mismatch in {len(shapes)} tensors (e.g. {shapes[:3]})")
        raise CheckpointError(f"{where} does not match the model config: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_codec(path: str | Path) -> Codec:
    """Build the codec described by `path/config.json` and load its weights strictly."""
    _ensure_registered()
    cfg = read_config(path)
    name = cfg["codec"]
    if not isinstance(name, str) or name not in _REGISTRY:
        raise CheckpointError(
            f"{Path(path) / CONFIG_NAME}: unknown codec {name!r} (known: {sorted(_REGISTRY)})"
        )
    try:
        model = _REGISTRY[name].from_config(cfg["model"])
    except (TypeError, ValueError, KeyError, RuntimeError, MemoryError, OverflowError) as e:
        # RuntimeError / MemoryError: sizes too large to allocate (torch's allocator)
        raise CheckpointError(f"{Path(path) / CONFIG_NAME}: invalid model config: {e}") from e
    load_state_strict(model, read_weights(path), str(Path(path) / WEIGHTS_NAME))
    model.eval()
    model.checkpoint_hash = checkpoint_hash(path)  # type: ignore[attr-defined]
    model.checkpoint_meta = cfg.get("meta", {})  # type: ignore[attr-defined]
    log.info("loaded %s from %s (hash %s)", name, path, model.checkpoint_hash)
    return model


def save_codec(model: Codec, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint folder atomically: build it beside `path`, then swap it in.

    A crash at any moment leaves either the old folder or the new one, never a mix.
    """
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
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
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not folder.exists():
            os.replace(old, folder)  # the second rename failed: put the previous folder back
        raise
    return folder


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def checkpoint_hash(path: str | Path) -> str:
    """Short content hash of a checkpoint folder (weights + config), for cache keys."""
    h = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        p = Path(path) / name
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
