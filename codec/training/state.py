"""Training checkpoints: a model folder plus the state needed to continue, written atomically.

A training checkpoint folder (e.g. `checkpoint_dir/latest/`) is a normal model folder that
`codec.models.registry.load_codec` reads, plus two files:

    config.json, model.safetensors   written by `save_codec` (meta: step, stage, hours, ...)
    discriminator.safetensors        the discriminator ensemble's weights
    train_state.safetensors          optimisers, schedulers, step, epoch, best metric, RNG states

`train_state.safetensors` keeps every tensor as a safetensors tensor and the rest of the (nested)
state as JSON in the file's metadata, so nothing is ever unpickled.

The folder is built under a staging name and swapped in with two renames by
`codec.checkpoint.swap_folder` (`latest` -> `.latest.old`, staging -> `latest`); a run killed at
any moment leaves either
`latest` or `.latest.old` complete, and `recover` puts the latter back. `recover` (run on
`--resume` and before every checkpoint write) also removes the staging folders of killed runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from codec.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    fsync_dir,
    pid_alive,
    save_codec,
    swap_folder,
)

TRAIN_STATE_NAME = "train_state.safetensors"
DISC_NAME = "discriminator.safetensors"
_META_KEY = "state"


# ------------------------------------------------------------------------------------------------
# nested state <-> (tensors, JSON)
# ------------------------------------------------------------------------------------------------
def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors/arrays by references into `tensors`; make the rest JSON-safe."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj)
        return {"__ndarray__": key, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: _encode(v, tensors) for k, v in obj.items()}}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in the training state")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy().astype(obj["dtype"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    if "__dict__" in obj:
        return {k: _decode(v, tensors) for k, v in obj["__dict__"].items()}
    raise CheckpointError(f"unrecognised entry in the training state: {sorted(obj)}")


def save_state_file(path: str | Path, state: dict[str, Any]) -> None:
    """Write a nested state (tensors, numbers, strings, lists, dicts) as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    save_file(tensors, str(path), metadata={_META_KEY: json.dumps(tree)})


def load_state_file(path: str | Path) -> dict[str, Any]:
    """Read a file written by `save_state_file` (raises `CheckpointError` if unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        tree = json.loads(meta[_META_KEY])
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable training state: {e}") from e
    except Exception as e:  # safetensors raises its own error type for truncated headers
        raise CheckpointError(f"{path} is not a readable training state: {e}") from e
    return _decode(tree, tensors)


def read_state_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain safetensors state dict (the discriminator's), as `CheckpointError` on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e


# ------------------------------------------------------------------------------------------------
# RNG states
# ------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states of this process."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gathered_rng_states(dist: Any) -> list[Any]:
    """Every rank's `rng_state()`, gathered (a list of one outside torchrun), so that a
    checkpoint written by rank 0 resumes every rank's random stream. `dist` is the run's
    `codec.training.distributed` context (`distributed`, `world_size`)."""
    rngs: list[Any] = [rng_state()]
    if dist.distributed:
        rngs = [None] * dist.world_size
        torch.distributed.all_gather_object(rngs, rng_state())
    return rngs


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    random.setstate(_to_tuple(state["python"]))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    if isinstance(x, list | tuple):
        return tuple(_to_tuple(v) for v in x)
    return x


# ------------------------------------------------------------------------------------------------
# checkpoint folders
# ------------------------------------------------------------------------------------------------
def _old_name(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def recover(folder: str | Path) -> Path:
    """Undo a swap interrupted between its two renames (`.NAME.old` back to `NAME`) and remove
    the staging folders of killed runs (`remove_stale_staging`)."""
    folder = Path(folder)
    old = _old_name(folder)
    if old.is_dir():
        if folder.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, folder)
    remove_stale_staging(folder)
    return folder


def remove_stale_staging(folder: str | Path) -> list[Path]:
    """Remove `.NAME.staging-<pid>` folders (full-size checkpoints) that killed runs left beside
    `folder`, with what `save_codec` left inside them (`..NAME.staging-<pid>.*`).

    Only folders of processes that no longer run are removed (this process counts as not
    running: it calls this before it stages): one trainer normally owns a checkpoint_dir, but
    a second run pointed at the same folder by mistake keeps its staging folder intact.
    """
    folder = Path(folder)
    prefixes = (f".{folder.name}.staging-", f"..{folder.name}.staging-")
    try:
        siblings = list(folder.parent.iterdir())
    except OSError:
        return []
    removed = []
    for p in siblings:
        prefix = next((x for x in prefixes if p.name.startswith(x)), None)
        pid = p.name[len(prefix) :].split(".", 1)[0] if prefix else ""
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def is_complete(folder: str | Path) -> bool:
    """A training checkpoint folder with all four files."""
    folder = Path(folder)
    names = (CONFIG_NAME, WEIGHTS_NAME, DISC_NAME, TRAIN_STATE_NAME)
    return all((folder / n).is_file() for n in names)


def save_training_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    discriminator: torch.nn.Module,
    train_state: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
    """Write model + discriminator + training state into `folder`, atomically."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        save_codec(model, staging, meta=meta)  # type: ignore[arg-type]
        disc = {k: v.detach().cpu().contiguous() for k, v in discriminator.state_dict().items()}
        save_file(disc, str(staging / DISC_NAME))
        save_state_file(staging / TRAIN_STATE_NAME, train_state)
        for f in staging.iterdir():
            _fsync_file(f)
        _fsync_dir(staging)
        swap_folder(staging, folder, _old_name(folder), sync_dir=lambda p: _fsync_dir(p))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fsync_dir(path)
