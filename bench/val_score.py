"""A checkpoint's validation score as the trainer computes it, on a training config's held-out
clips (for the corpus mix: the corpus val split, held out by source file, plus the demo val
split), so that checkpoints from different runs, and step 0 of a run, compare on one set.

    python -m bench.val_score --config configs/stage2_corpus.yaml \
        --checkpoint checkpoints/almtokenizer_demo [--checkpoint work_dirs/x/best ...]

Prints, per checkpoint, eval/score (mel distance + 1 - pitch kept), mel distance, pitch kept and
SI-SDR, averaged over the config's eval windows (ALMTokenizer) or each bandwidth (EnCodec), and
per setting. The independent set is not a training config's held-out split: never select by it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from codec.models.base import Codec
from codec.models.registry import load_codec
from codec.training.config import ConfigError, TrainConfig, load_config
from codec.training.data import Loaders, build_loaders
from codec.training.evaluation import evaluate

log = logging.getLogger("bench.val_score")


def score(model: Codec, cfg: TrainConfig, loaders: Loaders) -> dict[str, float]:
    """The trainer's eval scalars of `model` on the held-out clips of `loaders`."""
    t = cfg.training
    res = evaluate(
        model, loaders.held_out_loader(), t.stage, t.eval_windows, torch.device("cpu"),
        max_batches=t.eval_batches,
    )  # fmt: skip
    return res.scalars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.val_score", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--config", required=True, help="a training config (its dataloader and eval)"
    )
    parser.add_argument("--checkpoint", action="append", required=True, help="repeatable")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write {checkpoint: scalars} here")
    parser.add_argument("overrides", nargs="*", help="section.key=value, as for training")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    torch.set_num_threads(args.threads)
    out: dict[str, dict[str, float]] = {}
    try:
        cfg = load_config(args.config, args.overrides)
        loaders = build_loaders(cfg, rank=0, world_size=1)  # once: every checkpoint, same clips
        for ckpt in args.checkpoint:
            out[ckpt] = score(load_codec(ckpt), cfg, loaders)
    except (ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for ckpt, s in out.items():
        print(f"{ckpt}: " + ", ".join(f"{k[5:]} {v:.3f}" for k, v in sorted(s.items())))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
