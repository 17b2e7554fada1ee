"""Fit EnCodec's RVQ on a frozen autoencoder: `python -m codec.fit_rvq`.

The EnCodec codec of this project is the shared acoustic autoencoder (stage 1 of `encodec`,
frozen) plus a residual vector quantizer at 75 Hz. The package's RVQ learns by k-means
initialisation and exponential moving averages, not by gradients, so stage 2 needs no decoder
pass at all: encode training crops once (the latent cache), then stream the cached frames
through the quantizer in training mode.

    python -m codec.fit_rvq --config configs/autoencoder.yaml \
        --autoencoder work_dirs/autoencoder/best --out checkpoints/encodec_demo

Every layer is updated on every batch (all `n_q` codebooks), so each bandwidth's codebook prefix
is trained: layer k only ever sees the residual of layers < k. Encoder and decoder weights are
copied unchanged, which the tool checks before it saves.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time

import torch
from tqdm import tqdm

from codec.checkpoint import CheckpointError, load_codec, read_config, save_codec
from codec.config import ConfigError, load_config
from codec.encodec import EnCodecCodec
from codec.training.data import build_loaders

log = logging.getLogger("codec.fit_rvq")


@torch.no_grad()
def cache_latents(
    model: EnCodecCodec, batches: list[torch.Tensor] | object, max_crops: int
) -> torch.Tensor:
    """Encoder latents of up to `max_crops` training crops: `[M, D, T]` (float32, CPU)."""
    model.eval()
    out, n = [], 0
    bar = tqdm(total=max_crops, desc="latent cache", unit="crop")
    for wav in batches:  # type: ignore[attr-defined]
        z = model.encoder(model._pad_to_hop(wav))
        out.append(z.float().cpu())
        n += wav.shape[0]
        bar.update(wav.shape[0])
        if n >= max_crops:
            break
    bar.close()
    if not out:
        raise ValueError("no training crops: the dataset is empty")
    return torch.cat(out)[:max_crops]


@torch.no_grad()
def fit_rvq(
    model: EnCodecCodec, latents: torch.Tensor, steps: int, batch_size: int, seed: int = 0
) -> dict[str, float]:
    """Re-initialise `model.quantizer` and fit it to `latents` `[M, D, T]` by k-means init and
    EMA updates over `steps` random minibatches of `batch_size` crops; returns the relative
    squared error per bandwidth (`rvq/rel_err_<kbps>`) on the whole cache."""
    fresh = EnCodecCodec(model.config).quantizer
    model.quantizer.load_state_dict(fresh.state_dict())
    model.quantizer.train()
    g = torch.Generator().manual_seed(seed)
    n_q = model.config.n_q
    for _ in tqdm(range(steps), desc="rvq (EMA)", unit="batch"):
        idx = torch.randint(0, latents.shape[0], (batch_size,), generator=g)
        model.quantizer.vq(latents[idx], n_q=n_q)
    model.quantizer.eval()
    stats, energy = {}, latents.pow(2).sum()
    for bw in model.config.target_bandwidths:
        n = model.config.codebooks_for(bw)
        err = 0.0
        for chunk in latents.split(256):
            codes = model.quantizer.vq.encode(chunk, n_q=n)
            err += float((model.quantizer.vq.decode(codes) - chunk).pow(2).sum())
        stats[f"rvq/rel_err_{bw:g}kbps"] = err / float(energy)
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.fit_rvq", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="training config whose dataloader is used")
    p.add_argument("--autoencoder", required=True, help="stage-1 encodec checkpoint folder")
    p.add_argument("--out", required=True, help="folder of the finished EnCodec checkpoint")
    p.add_argument("--crops", type=int, default=2000, help="training crops in the latent cache")
    p.add_argument("--steps", type=int, default=3000, help="EMA minibatches")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("overrides", nargs="*", help="config key=value overrides")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.crops < args.batch_size or args.steps < 1:
        print("error: --crops must be >= --batch-size and --steps >= 1", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
        model = load_codec(args.autoencoder)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not isinstance(model, EnCodecCodec):
        print(
            f"error: {args.autoencoder} holds a {model.name!r} model, not encodec", file=sys.stderr
        )
        return 2
    started = time.time()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("quantizer")}
    loaders = build_loaders(cfg, 0, 1)
    epochs = math.ceil(args.crops / max(len(loaders.train), 1))
    batches = (wav for e in range(epochs) for wav in loaders.epoch_loader(e))
    latents = cache_latents(model, batches, args.crops)
    log.info("latent cache: %s, std %.2f", tuple(latents.shape), float(latents.std()))
    stats = fit_rvq(model, latents, args.steps, args.batch_size, cfg.training.seed)
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    if changed:
        raise RuntimeError(f"fitting the RVQ changed autoencoder weights: {changed[:3]}")
    for k, v in stats.items():
        log.info("%s = %.4f", k, v)
    meta = {
        "command": " ".join(["python -m codec.fit_rvq", *(argv or sys.argv[1:])]),
        "stage": 2,
        "autoencoder": str(args.autoencoder),
        "rvq_steps": args.steps,
        "rvq_crops": int(latents.shape[0]),
        "hours_rvq": round((time.time() - started) / 3600, 4),
        **stats,
        "autoencoder_meta": read_config(args.autoencoder).get("meta", {}),
    }
    save_codec(model, args.out, meta=meta)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
