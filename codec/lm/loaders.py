"""Where token LMs are built and read: `build_lm`, and checkpoint folders.

An LM checkpoint is a folder, as the codecs' are:

    config.json        {"format": "almtokenizer-studio/token-lm", "format_version": 1,
                        "model": {scheme, dim, ...}, "shape": {n_q, codebook_size,
                        context_frames}, "tokenizer": {codec, checkpoint_hash, window, ...},
                        "meta": {step, train_config, ...}}
    model.safetensors  the state dict
    train_state.safetensors   (training checkpoints only: optimiser, step, RNG states)

Folders are written under a staging name and swapped in (`codec.checkpoint.swap_folder`), so
a killed run leaves the previous folder or the new one; `codec.training.state.recover` puts
back one caught between the two renames. Loading is strict and every failure raises
`CheckpointError` naming the file; `load_lm(..., codec=...)` also refuses a codec whose codes
are not the ones the LM was trained on (`TokenizerMismatchError`, both hashes named).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from codec.alloc_budget import AllocationBudget, AllocationBudgetError
from codec.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    checkpoint_hash,
    fsync_dir,
    load_state_strict,
    read_weights,
    swap_folder,
)
from codec.lm.depth import DepthLM
from codec.lm.model import DelayLM, LMModelConfig, TokenLM, TokenShape
from codec.lm.record import TokenizerRecord
from codec.schema import ConfigError, build_dataclass
from codec.training.state import TRAIN_STATE_NAME, recover, save_state_file

if TYPE_CHECKING:
    from codec.models.base import Codec

LM_FORMAT = "almtokenizer-studio/token-lm"
LM_FORMAT_VERSION = 1


def build_lm(config: LMModelConfig, shape: TokenShape) -> TokenLM:
    """The model of `config.scheme` ("delay" or "depth") for tokens of `shape`."""
    if config.scheme == "delay":
        return DelayLM(config, shape)
    if config.scheme == "depth":
        return DepthLM(config, shape)
    raise ValueError(f"unknown scheme {config.scheme!r}; expected 'delay' or 'depth'")


def save_lm(
    model: TokenLM,
    folder: str | Path,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model` (and, for a training checkpoint, `train_state`) as a folder, atomically;
    `dtype` casts every floating tensor of the weights file (an export: `codec.lm.export`).

    Raises:
        ValueError: the model has no tokenizer record (it would be unusable).
    """
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer record: set model.tokenizer first")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(staging / WEIGHTS_NAME))
        cfg = {
            "format": LM_FORMAT,
            "format_version": LM_FORMAT_VERSION,
            "model": model.config.to_dict(),
            "shape": model.shape.to_dict(),
            "tokenizer": model.tokenizer.to_dict(),
            "meta": meta or {},
        }
        (staging / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True))
        if train_state is not None:
            save_state_file(staging / TRAIN_STATE_NAME, train_state)
        for f in staging.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(staging)
        swap_folder(staging, folder, folder.with_name(f".{folder.name}.old"))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def read_lm_config(folder: str | Path) -> dict[str, Any]:
    """`config.json` of an LM folder, its format checked.

    Raises:
        CheckpointError: missing folder or file, not JSON, another format or version.
    """
    folder = recover(Path(folder))
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError(f"LM checkpoint {folder} does not exist (or is not a folder)")
    if not path.is_file():
        raise CheckpointError(f"LM checkpoint {folder} has no {CONFIG_NAME}")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(cfg, dict) or cfg.get("format") != LM_FORMAT:
        got = cfg.get("format") if isinstance(cfg, dict) else None
        raise CheckpointError(f"{path}: format {got!r} is not a token LM ({LM_FORMAT!r})")
    version = cfg.get("format_version")
    if type(version) is not int or version != LM_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (expected {LM_FORMAT_VERSION})"
        )
    for key in ("model", "shape", "tokenizer"):
        if not isinstance(cfg.get(key), dict):
            raise CheckpointError(f"{path}: missing section {key!r}")
    return cfg


def _weights_numel(folder: Path) -> int:
    try:
        with safe_open(str(folder / WEIGHTS_NAME), framework="pt", device="cpu") as f:
            return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    except Exception:  # missing or damaged: read_weights names the problem
        read_weights(folder)
        raise CheckpointError(
            f"{folder / WEIGHTS_NAME} is not a readable safetensors file"
        ) from None


def load_lm(
    folder: str | Path,
    codec: Codec | None = None,
    window: int | None = None,
    device: str | torch.device = "cpu",
) -> TokenLM:
    """Build the LM of `folder` and load its weights strictly (in eval mode).

    Args:
        codec: when given, the codec the LM's tokens will be decoded / encoded with; refused
            unless it is the tokenizer the LM was trained on.
        window: the window `codec` is used at (default: the LM's).

    Raises:
        CheckpointError: a missing, damaged or mismatched folder.
        TokenizerMismatchError: `codec` is not the LM's tokenizer (names both hashes).
    """
    folder = Path(folder)
    cfg = read_lm_config(folder)
    path = folder / CONFIG_NAME
    try:
        config = build_dataclass(LMModelConfig, cfg["model"], "model")
        shape = TokenShape(
            **{k: int(cfg["shape"][k]) for k in ("n_q", "codebook_size", "context_frames")}
        )
        record = TokenizerRecord.from_dict(cfg["tokenizer"])
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid LM config: {e}") from e
    if min(shape.n_q, shape.codebook_size, shape.context_frames) < 1:
        raise CheckpointError(f"{path}: invalid shape {shape}")
    if (record.n_q, record.codebook_size) != (shape.n_q, shape.codebook_size):
        raise CheckpointError(f"{path}: shape {shape} does not match its tokenizer record")
    if codec is not None:
        record.check_codec(codec, window)
    limit = 2 * _weights_numel(folder) + (1 << 24)
    try:
        with AllocationBudget(limit):
            model = build_lm(config, shape)
    except AllocationBudgetError as e:
        raise CheckpointError(
            f"{path}: the config asks for a larger model than {WEIGHTS_NAME} holds ({e})"
        ) from None
    load_state_strict(model, read_weights(folder), str(folder / WEIGHTS_NAME))
    model.tokenizer = record
    model.checkpoint_hash = checkpoint_hash(folder)
    model.checkpoint_meta = cfg.get("meta", {})
    return model.to(device).eval()
