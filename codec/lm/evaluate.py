"""Held-out bits of a trained token LM beside its baselines: a table on stdout and a JSON file.

    python -m codec.lm.evaluate --checkpoint work_dirs/lm/alm_w3/best
    python -m codec.lm.evaluate --checkpoint DIR --shards work_dirs/tokens/alm_w3 --json out.json

The shards default to the ones the LM was trained on (its config.json records them), split by
the same rule (`codec.lm.data`), so the baselines are fitted on the same training clips and
every model is scored on the same held-out clips. Shards of another tokenizer are refused.
Measures: `codec.lm.scoring`.

Exit status: 0 done; 2 a bad checkpoint, shard folder or argument.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from codec.checkpoint import CheckpointError
from codec.lm.data import load_shards
from codec.lm.loaders import load_lm
from codec.lm.record import TokenizerMismatchError
from codec.lm.scoring import LMReport, score_held_out
from codec.tokenizer.shards import ShardError

log = logging.getLogger("codec.lm.evaluate")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m codec.lm.evaluate",
        description="Held-out bits per token and per second of a token LM and its baselines.",
    )
    p.add_argument("--checkpoint", required=True, help="LM folder (e.g. work_dirs/lm/X/best)")
    p.add_argument("--shards", nargs="+", help="shard folders (default: the LM's training ones)")
    p.add_argument("--json", help="where to write the JSON (default: <checkpoint>_eval.json)")
    p.add_argument("--batch-size", type=int, default=16, help="chunks per forward pass")
    p.add_argument("--max-clips", type=int, help="score only the first N held-out clips")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the LM's forward")
    return p.parse_args(argv)


def evaluate_checkpoint(
    checkpoint: str | Path,
    shards: list[str] | None = None,
    batch_size: int = 16,
    max_clips: int | None = None,
    device: str = "cpu",
    amp: bool = False,
) -> LMReport:
    """Score the LM of `checkpoint` and the baselines on the held-out clips of `shards`.

    Raises:
        CheckpointError, ShardError, TokenizerMismatchError, ValueError.
    """
    if batch_size < 1 or (max_clips is not None and max_clips < 1):
        raise ValueError("--batch-size and --max-clips must be >= 1")
    model = load_lm(checkpoint, device=device)
    meta = model.checkpoint_meta
    data_cfg = meta.get("train_config", {}).get("data", {})
    shards = shards or data_cfg.get("shards")
    if not shards:
        raise ValueError(f"{checkpoint} records no shard folders; pass --shards")
    data = load_shards(
        list(shards),
        data_cfg.get("held_out_fraction", 0.1),
        data_cfg.get("group_by", "clip"),
        data_cfg.get("split_seed", 0),
        data_cfg.get("train_fraction", 1.0),  # the baselines see what the LM saw
    )
    assert model.tokenizer is not None  # load_lm sets it
    model.tokenizer.check_same(data.record, f"the shards in {', '.join(map(str, shards))}")
    if max_clips is not None:
        data.held_out = data.held_out[:max_clips]
    report = score_held_out(model, data, batch_size, device, amp)
    report.extra = {
        "checkpoint": str(checkpoint),
        "lm_step": meta.get("step"),
        "shards": [str(s) for s in shards],
    }
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: CUDA is not available")
        report = evaluate_checkpoint(
            args.checkpoint, args.shards, args.batch_size, args.max_clips, args.device, args.bf16
        )
    except (CheckpointError, ShardError, TokenizerMismatchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format_table())
    out = Path(args.json) if args.json else Path(f"{Path(args.checkpoint)}_eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
