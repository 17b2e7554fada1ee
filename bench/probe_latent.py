"""Cheap stage-2 probe: frame-MSE regression through the query/mask transformers on cached
latents, without the decoder, to compare optimisation choices in CPU-minutes.

    python -m bench.probe_latent --name summary --steps 300
    python -m bench.probe_latent --name no-summary --no-window-summary --steps 300
    python -m bench.probe_latent --name rvq --quantize --steps 300
    python -m bench.probe_latent --name rvq-warmup --quantize --quantizer-warmup 100 --steps 300

Reads the latent cache that `python -m codec.training --config configs/demo.yaml` builds (the
first complete folder under --cache, or --cache-folder). Every 50 steps it prints the training
loss and the relative frame error ||z_hat - z||^2 / ||z||^2 of 64 held-back cached crops at
w = 3, 6, 10 (through the RVQ with --quantize), and the first codebook's perplexity in the batch.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

from codec.models.almtokenizer import ALMConfig, ALMTokenizer, preset
from codec.training import latent_cache as LC

HELD = 64  # cached crops held back for the error figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.probe_latent", description=__doc__)
    p.add_argument("--name", default="probe")
    p.add_argument("--cache", default="work_dirs/latent_cache")
    p.add_argument("--cache-folder", default=None)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--quantize", action="store_true")
    p.add_argument("--quantizer-warmup", type=int, default=0)
    p.add_argument("--dead-code-steps", type=int, default=20)
    p.add_argument("--no-window-summary", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    if args.cache_folder:
        folder = Path(args.cache_folder)
    else:
        found = sorted(f for f in Path(args.cache).iterdir() if LC.is_complete(f))
        if not found:
            p.error(f"no complete latent cache under {args.cache}")
        folder = found[0]
    _, frames = LC.load_latent_cache(folder)
    cfg = preset("demo").to_dict()
    cfg["base_args"].update(
        dim=256, n_layers=args.layers, decoder_n_layers=args.layers, ffn_dim=512, ar_layers=0,
        dead_code_steps=args.dead_code_steps, quantizer_warmup_steps=args.quantizer_warmup,
        window_summary=not args.no_window_summary,
    )  # fmt: skip
    cfg["mae_args"]["n_layers"] = 0
    m = ALMTokenizer(ALMConfig.from_dict(cfg))
    m.standardizer.set_stats(*LC.frame_statistics(frames))
    m.train()
    params = [q for q in m.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99))
    train, held = frames[:-HELD], frames[-HELD:, :, : args.frames].float()
    span = frames.shape[-1] - args.frames
    t0 = time.time()
    for step in range(args.steps):
        rows = [rng.randrange(len(train)) for _ in range(args.batch)]
        starts = [rng.randint(0, span) for _ in rows]
        fr = torch.stack([train[i, :, s : s + args.frames] for i, s in zip(rows, starts)]).float()
        w = rng.randint(2, 10)
        z = m.standardizer(fr)
        _, h = m.encode_frames(z, w)
        commit, stats = torch.zeros(()), {}
        if args.quantize:
            q = m.quantizer(h)
            h, commit, stats = q.quantized, q.commit_loss, q.stats
        loss = torch.nn.functional.mse_loss(m.decode_frames(h, w)[..., : args.frames], z) + commit
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 50)
        opt.step()
        if (step + 1) % 50 == 0:
            m.eval()
            errs = [
                float(m.frame_error(held, w, quantize=args.quantize).mean()) for w in (3, 6, 10)
            ]
            m.train()
            perp = stats.get("stats/codebook_perplexity_0", float("nan"))
            print(
                f"{args.name} step {step + 1} {time.time() - t0:.0f}s train {loss.item():.3f} "
                f"held w3 {errs[0]:.3f} w6 {errs[1]:.3f} w10 {errs[2]:.3f} perplexity0 {perp:.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
