"""The command line of LM training: `python -m codec.lm --config FILE [--resume] [key=value ...]`.

Exit status: 0 done; 2 a bad config, shard folder or checkpoint (one `error:` line naming the
key); 1 an I/O error such as a full disk; 130 interrupted (continue with `--resume`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from codec.checkpoint import CheckpointError
from codec.lm.config import ConfigError, load_config
from codec.lm.loop import train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m codec.lm",
        description="Train a token language model on a codec's code shards (docs/lm.md).",
    )
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/lm_alm_w3.yaml")
    p.add_argument(
        "--resume", action="store_true", help="continue from checkpoint_dir/latest if present"
    )
    p.add_argument("overrides", nargs="*", help="key.path=value, e.g. training.max_steps=500")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        cfg = load_config(args.config, args.overrides)
        result = train(cfg, resume=args.resume)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    if rank == 0:
        print(f"done: {result.step} steps; final model in {result.final_dir}")
    return 0
