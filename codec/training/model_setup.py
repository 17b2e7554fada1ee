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

Each codec answers these questions itself through the `Codec` interface (`for_training`,
`trainable_parameters`, `load_stage1`, `frame_frontend`); nothing here branches on its name.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codec.checkpoint import CheckpointError, read_config
from codec.models.base import SAMPLE_RATE, Codec
from codec.models.registry import codec_class, load_codec
from codec.schema import config_section
from codec.training import distributed as D
from codec.training import latent_cache as LC
from codec.training.config import LOSS_KEYS, ConfigError, TrainConfig, resolve_model_args
from codec.training.data import Loaders, ResumableSampler

log = logging.getLogger(__name__)

STATS_BATCHES = 16  # training batches for the frame statistics when there is no latent cache
CACHE_MARGIN = 1.5  # cached crops are this many times dataloader.nsecs (room for sub-crops)


def build_model(cfg: TrainConfig) -> Codec:
    """An untrained codec of class `model.type` from `cfg.model` (`Codec.for_training`: an
    ALMTokenizer gets its frozen autoencoder from `model.base_args.frontend_checkpoint`);
    errors name the config key."""
    args = resolve_model_args(cfg.model)
    if cfg.training.stage == 3:
        args = decoder_stage_args(cfg)
    lam = cfg.training.lambdas
    zero_weight = frozenset(k for k in LOSS_KEYS if getattr(lam, k) == 0)
    try:
        with config_section("model"):
            return codec_class(cfg.model.type).for_training(args, cfg.training.stage, zero_weight)
    except ConfigError:
        raise
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"model.base_args: {e}") from e


def decoder_stage_args(cfg: TrainConfig) -> dict[str, Any]:
    """Stage 3 trains the decoder of a trained codec: the architecture is the one recorded in
    `training.start_checkpoint` (its weights are loaded after), with `model.base_args` /
    `model.mae_args` merged over it (`Codec.decoder_stage_args`)."""
    key = "training.start_checkpoint"
    try:
        saved = read_config(cfg.training.start_checkpoint)
    except CheckpointError as e:
        raise ConfigError(f"{key}: {e}") from e
    if saved["codec"] != cfg.model.type:
        raise ConfigError(
            f"{key}: holds a {saved['codec']!r} model, not model.type {cfg.model.type!r}"
        )
    cls = codec_class(cfg.model.type)
    with config_section("model"):
        return cls.decoder_stage_args(saved["model"], cfg.model.base_args, cfg.model.mae_args)


def load_frontend(model: Codec, folder: str | Path) -> int:
    """Copy the stage-1 state of the checkpoint at `folder` into `model`
    (`Codec.load_stage1`: ALMTokenizer's front end, from an ALMTokenizer or an EnCodec
    autoencoder; all of an EnCodec); returns the number of tensors copied.

    Raises:
        ConfigError: the folder is not a readable checkpoint or does not match `model`
            (names `training.stage1_checkpoint`).
    """
    key = "training.stage1_checkpoint"
    try:
        source = load_codec(folder)
    except CheckpointError as e:
        raise ConfigError(f"{key}: {e}") from e
    try:
        n = model.load_stage1(source, str(folder))
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from e
    log.info("stage 2: loaded %d stage-1 tensors from %s", n, folder)
    return n


def trainable_parameters(model: Codec, cfg: TrainConfig) -> list[nn.Parameter]:
    """Set `requires_grad` for this stage and return the parameters to optimise
    (`Codec.trainable_parameters`)."""
    try:
        params = model.trainable_parameters(cfg.training.stage)
    except ConfigError as e:
        raise ConfigError(f"training.stage: {e}") from e
    params = _apply_freeze(model, params, cfg.training.freeze)
    if not params:
        raise ConfigError(f"training.stage: stage {cfg.training.stage} has nothing to train")
    return params


def _apply_freeze(
    model: Codec, params: list[nn.Parameter], prefixes: list[str]
) -> list[nn.Parameter]:
    """Freeze the parameters whose names start with one of `prefixes` (`training.freeze`);
    a prefix that names no parameter is a config error (a typo would freeze nothing)."""
    if not prefixes:
        return params
    names = dict(model.named_parameters())
    for i, prefix in enumerate(prefixes):
        hits = [n for n in names if n == prefix or n.startswith(prefix.rstrip(".") + ".")]
        if not hits:
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(
                f"training.freeze[{i}]: {prefix!r} names no parameter of {model.name} "
                f"(top-level modules: {', '.join(tops)})"
            )
        for n in hits:
            names[n].requires_grad_(False)
    kept = [p for p in params if p.requires_grad]
    log.info("training.freeze %s: %d of %d tensors train", prefixes, len(kept), len(params))
    return kept


def prepare_stage2(
    model: Codec, cfg: TrainConfig, loaders: Loaders, dist: D.DistInfo | None = None
) -> Loaders:
    """Stage 2 of a codec on a frozen front end (ALMTokenizer): frame statistics from the
    training data, and with `training.latent_cache` the training set replaced by cached
    latents (built on first use; rank 0 builds, the others wait). Returns the loaders to train
    with.

    Statistics are set only when the model has none yet, so a resumed run keeps those in its
    checkpoint. Without a cache they come from `STATS_BATCHES` batches of training crops.
    """
    frontend = model.cached_frontend(cfg.training.stage)
    if frontend is None:
        return loaders
    t, dl = cfg.training, cfg.dataloader
    if t.latent_cache is None:
        # stage 3 starts from a trained codec: its checkpoint brings the statistics
        if model.needs_frame_statistics() and t.stage != 3:
            frames = []
            for i, wav in enumerate(loaders.epoch_loader(0)):
                if i >= STATS_BATCHES:
                    break
                with torch.no_grad():
                    frames.append(frontend.patchify(wav))
            model.set_frame_statistics(*LC.frame_statistics(torch.cat(frames)))
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
    if model.needs_frame_statistics():
        model.set_frame_statistics(*LC.frame_statistics(frames))
        log.info("frame statistics from %d cached crops", frames.shape[0])
    num_frames = min(max(1, round(dl.nsecs * SAMPLE_RATE / frontend.hop_length)), frames.shape[-1])
    train = LC.LatentCropDataset(wav, frames, num_frames, frontend.hop_length, t.seed)
    old = loaders.sampler
    sampler = ResumableSampler(len(train), old.rank, old.world_size, t.seed, dl.shuffle)
    log.info("stage 2 trains on %d cached crops of %d frames (%s)", len(train), num_frames, folder)
    return Loaders(train, sampler, loaders.held_out, loaders.batch_size, 0)
