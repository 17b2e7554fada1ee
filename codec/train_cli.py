"""The command line shared by the project's trainers (`python -m codec.training`, `python -m
codec.lm`): `--config FILE [--resume] [key=value ...]`, one `error:` line on failure.

Exit status: 0 done; 2 a bad config, data folder or checkpoint (the line names the key or the
file); 1 an I/O error such as a full disk (the previous checkpoint stays intact); 130
interrupted (continue with `--resume`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from codec.checkpoint import CheckpointError


def run_trainer(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    load_config: Callable[[str, list[str]], Any],
    train: Callable[..., Any],
    config_errors: tuple[type[Exception], ...],
    default_config: str | None = None,
    config_help: str = "YAML config",
) -> int:
    """Parse `argv`, load the config with its overrides, train; returns the exit status."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", required=default_config is None, default=default_config,
                   help=config_help)  # fmt: skip
    p.add_argument(
        "--resume", action="store_true", help="continue from checkpoint_dir/latest if present"
    )
    p.add_argument(
        "overrides", nargs="*", help="key.path=value overrides, e.g. training.max_steps=500"
    )
    args = p.parse_args(argv)
    is_main = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(
        level=logging.INFO if is_main else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        cfg = load_config(args.config, args.overrides)
        result = train(cfg, resume=args.resume)
    except (*config_errors, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. disk full while writing a checkpoint
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    if is_main:
        print(f"done: {result.step} steps; final model in {result.final_dir}")
    return 0
