"""Building the codec to train and choosing what each stage optimises.

ALMTokenizer stands on a frozen EnCodec-architecture autoencoder (its front end), trained as
the EnCodec model's stage 1: `build_model` takes the autoencoder's architecture and weights from
`model.base_args.frontend_checkpoint` (or a stage-1 ALMTokenizer folder via
`training.stage1_checkpoint`). Stage 2 trains the backbone (query-token transformers, RVQ, MAE,
AR); `prepare_stage2` sets the frame standardisation from training data and, with
`training.latent_cache`, serves cached latents so no step runs the encoder. A stage-2 run whose
`mae` (or `ar`) lambda is 0 builds the model without that training-only branch.

EnCodec baseline: every parameter trains; stage 1 is a plain autoencoder, stage 2 the quantized
codec, optionally started from a stage-1 folder (all weights).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from codec.base import SAMPLE_RATE, Codec
from codec.checkpoint import CheckpointError, load_codec
from codec.config import ConfigError, TrainConfig, resolve_model_args
from codec.training import distributed as D
from codec.training import latent_cache as LC
from codec.training.data import Loaders, ResumableSampler

log = logging.getLogger(__name__)

STATS_BATCHES = 16  # training batches for the frame statistics when there is no latent cache
CACHE_MARGIN = 1.5  # cached crops are this many times dataloader.nsecs (room for sub-crops)


def build_model(cfg: TrainConfig) -> Codec:
    """An untrained codec from `cfg.model` (errors name the config key); an ALMTokenizer gets
    its frozen autoencoder from `model.base_args.frontend_checkpoint` when that is set."""
    args = resolve_model_args(cfg.model)
    source = None
    if cfg.model.type == "almtokenizer":
        from codec.almtokenizer import ALMTokenizer
        from codec.almtokenizer.frontend_encodec import resolve_frontend_args

        codec_cls: type[Codec] = ALMTokenizer
        source = args["base_args"].get("frontend_checkpoint")
        try:
            args["base_args"] = resolve_frontend_args(args["base_args"])
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"model.base_args.frontend_checkpoint: {e}") from e

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
        model = codec_cls.from_config(args)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"model.base_args: {e}") from e
    if source:
        from codec.almtokenizer.frontend_encodec import load_frontend_checkpoint

        try:
            load_frontend_checkpoint(model.frontend, source)
        except (OSError, ValueError, CheckpointError) as e:
            raise ConfigError(f"model.base_args.frontend_checkpoint: {e}") from e
    return model


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
    if source.name == "encodec" and model.name == "almtokenizer":
        try:  # the autoencoder itself: its encoder / decoder become the front end
            model.frontend.load_from_encodec(source, str(folder))  # type: ignore[union-attr]
        except ValueError as e:
            raise ConfigError(f"{key}: {e}") from e
        return len(model.frontend.state_dict())  # type: ignore[union-attr]
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
        raise ConfigError(
            "training.stage: ALMTokenizer's front end is a frozen EnCodec autoencoder; train it "
            "as model.type=encodec (stage 1), set model.base_args.frontend_checkpoint to it and "
            "run ALMTokenizer with training.stage=2"
        )
    else:
        model.freeze_frontend()
        params = [p for p in model.backbone_parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"training.stage: stage {cfg.training.stage} has nothing to train")
    return params


def prepare_stage2(
    model: Codec, cfg: TrainConfig, loaders: Loaders, dist: D.DistInfo | None = None
) -> Loaders:
    """ALMTokenizer stage 2: frame statistics from the training data, and with
    `training.latent_cache` the training set replaced by cached latents (built on first use;
    rank 0 builds, the others wait). Returns the loaders to train with.

    Statistics are set only when the model has none yet, so a resumed run keeps those in its
    checkpoint. Without a cache they come from `STATS_BATCHES` batches of training crops.
    """
    if cfg.model.type != "almtokenizer" or cfg.training.stage != 2:
        return loaders
    t, dl = cfg.training, cfg.dataloader
    std = model.standardizer  # type: ignore[union-attr]
    if t.latent_cache is None:
        if not bool(std.ready):
            frames = []
            for i, wav in enumerate(loaders.epoch_loader(0)):
                if i >= STATS_BATCHES:
                    break
                with torch.no_grad():
                    frames.append(model.frontend.patchify(wav))  # type: ignore[union-attr]
            std.set_stats(*LC.frame_statistics(torch.cat(frames)))
            log.info("frame statistics from %d training batches", len(frames))
        return loaders
    from codec.data import build_dataset

    cache_seconds = dl.nsecs * CACHE_MARGIN
    key = LC.CacheKey(
        dataset=dl.dataset,
        dataset_path=str(dl.dataset_path),
        split="train",
        subset_size=dl.train_subset_size,
        seed=t.seed,
        cache_seconds=cache_seconds,
        crops=t.latent_cache_crops,
    )
    frontend = model.frontend  # type: ignore[union-attr]
    weights_hash = frontend.weights_hash()
    folder = LC.cache_folder(t.latent_cache, weights_hash, key)
    if (dist is None or dist.is_main) and not LC.is_complete(folder):
        log.info("building the latent cache %s", folder)
        source = build_dataset(
            dl.dataset, dl.dataset_path, "train", cache_seconds, dl.train_subset_size, t.seed
        )
        info = {"key": asdict(key), "frontend_hash": weights_hash}
        LC.build_latent_cache(
            frontend.patchify, source, t.latent_cache_crops, folder, frontend.hop_length, info=info
        )
    D.barrier()
    wav, frames = LC.load_latent_cache(folder)
    if not bool(std.ready):
        std.set_stats(*LC.frame_statistics(frames))
        log.info("frame statistics from %d cached crops", frames.shape[0])
    num_frames = min(max(1, round(dl.nsecs * SAMPLE_RATE / frontend.hop_length)), frames.shape[-1])
    train = LC.LatentCropDataset(wav, frames, num_frames, frontend.hop_length, t.seed)
    old = loaders.sampler
    sampler = ResumableSampler(len(train), old.rank, old.world_size, t.seed, dl.shuffle)
    log.info("stage 2 trains on %d cached crops of %d frames (%s)", len(train), num_frames, folder)
    return Loaders(train, sampler, loaders.held_out, loaders.batch_size, 0)
