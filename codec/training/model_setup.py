"""Building the codec to train and choosing what each stage optimises.

ALMTokenizer: stage 1 trains only the front end (patchify/unpatchify) as an autoencoder; the
rest is frozen so DDP and the optimiser ignore it. Stage 2 loads the front end from the stage-1
checkpoint folder, freezes it and trains the backbone (query-token transformers, RVQ, MAE, AR).
A stage-2 run whose `mae` (or `ar`) lambda is 0 builds the model without that training-only
branch, so its cost is skipped too.

EnCodec baseline: every parameter trains; stage 1 is a plain autoencoder, stage 2 the quantized
codec, optionally started from a stage-1 folder (all weights).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from codec.base import Codec
from codec.checkpoint import CheckpointError, load_codec
from codec.config import ConfigError, TrainConfig, resolve_model_args

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig) -> Codec:
    """An untrained codec from `cfg.model` (errors name the config key)."""
    args = resolve_model_args(cfg.model)
    if cfg.model.type == "almtokenizer":
        from codec.almtokenizer import ALMTokenizer

        codec_cls: type[Codec] = ALMTokenizer

        lam = cfg.training.lambdas
        if cfg.training.stage == 2 and lam.mae == 0 and args["mae_args"]["n_layers"]:
            log.info("training.lambdas.mae is 0: building the model without the MAE branch")
            args["mae_args"]["n_layers"] = 0
        if cfg.training.stage == 2 and lam.ar == 0 and args["base_args"]["ar_layers"]:
            log.info("training.lambdas.ar is 0: building the model without the depth-AR head")
            args["base_args"]["ar_layers"] = 0
    else:
        from codec.encodec import EnCodecCodec

        codec_cls = EnCodecCodec
    try:
        return codec_cls.from_config(args)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"model.base_args: {e}") from e


def _names_of(model: nn.Module, params: list[nn.Parameter]) -> list[str]:
    ids = {id(p) for p in params}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def frontend_state_keys(model: Codec) -> list[str]:
    """State-dict keys of the front end: its parameters and the buffers of the same modules
    (every key for a codec without a separate front end, i.e. EnCodec)."""
    if not hasattr(model, "frontend_parameters"):
        return list(model.state_dict())
    names = _names_of(model, list(model.frontend_parameters()))
    prefixes = {n.split(".")[0] + "." for n in names}
    return [k for k in model.state_dict() if any(k.startswith(p) for p in prefixes)]


def load_frontend(model: Codec, folder: str | Path) -> int:
    """Copy the front end of the stage-1 checkpoint at `folder` into `model` (ALMTokenizer), or
    all of it (EnCodec); returns the number of tensors copied.

    Raises:
        ConfigError: the folder is not a readable ALMTokenizer checkpoint or its front end does
            not match the configured one (names `training.stage1_checkpoint`).
    """
    key = "training.stage1_checkpoint"
    try:
        source = load_codec(folder)
    except CheckpointError as e:
        raise ConfigError(f"{key}: {e}") from e
    if source.name != model.name:
        raise ConfigError(f"{key}: {folder} holds a {source.name!r} model, not {model.name!r}")
    src, own = source.state_dict(), model.state_dict()
    keys = frontend_state_keys(model)
    missing = [k for k in keys if k not in src]
    shapes = [k for k in keys if k in src and src[k].shape != own[k].shape]
    if missing or shapes:
        raise ConfigError(
            f"{key}: the front end in {folder} does not match model.base_args "
            f"(missing {missing[:3]}, shape mismatch {shapes[:3]})"
        )
    with torch.no_grad():
        for k in keys:
            own[k].copy_(src[k])
    log.info("stage 2: loaded %d front-end tensors from %s", len(keys), folder)
    return len(keys)


def trainable_parameters(model: Codec, cfg: TrainConfig) -> list[nn.Parameter]:
    """Set `requires_grad` for this stage and return the parameters to optimise."""
    if cfg.model.type != "almtokenizer":
        params = [p for p in model.parameters() if p.requires_grad]
    elif cfg.training.stage == 1:
        front = {id(p) for p in model.frontend_parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in front)
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        model.freeze_frontend()
        params = [p for p in model.backbone_parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"training.stage: stage {cfg.training.stage} has nothing to train")
    return params
