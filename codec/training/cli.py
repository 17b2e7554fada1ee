"""The command line of the training loop: `python -m codec.training --config FILE [--resume]
[key=value ...]`.

Exit status: 0 done; 2 a bad config or checkpoint; 1 an I/O error such as a full disk (one
`error:` line naming the folder; the previous checkpoint stays intact); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from codec.checkpoint import CheckpointError
from codec.training.config import ConfigError, load_config
from codec.training.loop import train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m codec.training",
        description="Train ALMTokenizer (or the EnCodec baseline, model.type=encodec).",
    )
    p.add_argument("--config", default="config.yaml", help="YAML config (default: config.yaml)")
    p.add_argument(
        "--resume", action="store_true", help="continue from checkpoint_dir/latest if present"
    )
    p.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. training.stage=2")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        cfg = load_config(args.config, args.overrides)
        result = train(cfg, resume=args.resume)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. disk full while writing a checkpoint
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {result.step} steps; final model in {result.final_dir}")
    return 0
