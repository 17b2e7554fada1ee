"""Fit EnCodec's RVQ on a frozen autoencoder: `python -m codec.training.fit_rvq`.

The EnCodec codec of this project is the shared acoustic autoencoder (stage 1 of `encodec`,
frozen) plus a residual vector quantizer at 75 Hz. The package's RVQ learns by k-means
initialisation and exponential moving averages, not by gradients, so stage 2 needs no decoder
pass at all: encode training crops once (the latent cache), run k-means per layer on the
residual that reaches it, and optionally stream the cached frames through the quantizer in
training mode for EMA refinement (`--steps`; about 9 s per 128-crop batch on one CPU thread,
so the default is k-means only).

    python -m codec.training.fit_rvq --config configs/autoencoder.yaml \
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

from codec.checkpoint import CheckpointError, read_config, save_codec
from codec.models.encodec import EnCodecCodec
from codec.models.registry import load_codec
from codec.training.config import ConfigError, load_config
from codec.training.data import build_loaders

log = logging.getLogger("codec.training.fit_rvq")


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
def kmeans(
    x: torch.Tensor, k: int, iters: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on `x` `[M, D]` with matmul distances (the package's version builds an
    `[M, K, D]` difference tensor: 1.3 GB per iteration at M=2400, K=1024, D=128). Empty
    clusters are re-seeded from random points. Returns centres `[K, D]` and cluster sizes `[K]`.
    """
    centres = x[torch.randperm(x.shape[0], generator=generator)[:k]].clone()
    sizes = torch.zeros(k)
    for _ in range(iters):
        dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ centres.t() + centres.pow(2).sum(1)
        assign = dist.argmin(1)
        sizes = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        empty = sizes == 0
        centres = torch.where(empty[:, None], centres, sums / sizes.clamp(min=1)[:, None])
        if empty.any():
            idx = torch.randint(0, x.shape[0], (int(empty.sum()),), generator=generator)
            centres[empty] = x[idx]
    return centres, sizes


@torch.no_grad()
def kmeans_init_rvq(
    model: EnCodecCodec, latents: torch.Tensor, iters: int, max_vectors: int, seed: int = 0
) -> None:
    """Initialise every RVQ layer by k-means on the residual that reaches it, from up to
    `max_vectors` frames of `latents` `[M, D, T]`."""
    g = torch.Generator().manual_seed(seed)
    frames = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
    residual = frames[torch.randperm(frames.shape[0], generator=g)[:max_vectors]].clone()
    for layer in tqdm(model.quantizer.vq.layers, desc="k-means init", unit="layer"):
        book = layer._codebook
        centres, sizes = kmeans(residual, book.codebook_size, iters, g)
        book.embed.copy_(centres)
        book.embed_avg.copy_(centres * sizes.clamp(min=1)[:, None])
        book.cluster_size.copy_(sizes)
        book.inited.fill_(True)
        dist = residual.pow(2).sum(1, keepdim=True) - 2 * residual @ centres.t()
        residual = residual - centres[(dist + centres.pow(2).sum(1)).argmin(1)]


@torch.no_grad()
def fit_rvq(
    model: EnCodecCodec,
    latents: torch.Tensor,
    steps: int,
    batch_size: int,
    seed: int = 0,
    kmeans_iters: int = 20,
) -> dict[str, float]:
    """Re-initialise `model.quantizer` and fit it to `latents` `[M, D, T]`: k-means per layer
    (`kmeans_init_rvq`), then EMA updates over `steps` random minibatches of `batch_size`
    crops; returns the relative squared error per bandwidth (`rvq/rel_err_<kbps>`) on the
    whole cache."""
    fresh = EnCodecCodec(model.config).quantizer
    model.quantizer.load_state_dict(fresh.state_dict())
    kmeans_init_rvq(model, latents, kmeans_iters, max_vectors=50 * model.config.bins, seed=seed)
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
    p = argparse.ArgumentParser(
        prog="python -m codec.training.fit_rvq", description=__doc__.split("\n")[0]
    )
    p.add_argument("--config", required=True, help="training config whose dataloader is used")
    p.add_argument("--autoencoder", required=True, help="stage-1 encodec checkpoint folder")
    p.add_argument("--out", required=True, help="folder of the finished EnCodec checkpoint")
    p.add_argument("--crops", type=int, default=2000, help="training crops in the latent cache")
    p.add_argument(
        "--steps", type=int, default=0, help="EMA minibatches after k-means (0: k-means only)"
    )
    p.add_argument("--batch-size", type=int, default=128, help="crops per EMA minibatch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("overrides", nargs="*", help="config key=value overrides")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.crops < args.batch_size or args.steps < 0:
        print("error: --crops must be >= --batch-size and --steps >= 0", file=sys.stderr)
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
        "command": " ".join(["python -m codec.training.fit_rvq", *(argv or sys.argv[1:])]),
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
