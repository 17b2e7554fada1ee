"""Export a trained token LM for shipping: weights in float16 (or float32), checked on held-out
clips before the folder is kept.

    python -m codec.lm.export --checkpoint work_dirs/lm/alm_w3/best \
        --out checkpoints/lm_almtokenizer_w3 \
        --check-shards work_dirs/tokens/alm_w3/train work_dirs/tokens/alm_w3/test

The exported folder is an ordinary LM checkpoint (`codec.lm.loaders`): `config.json` (the
source's, with `meta.export` added: source, dtype, step, the check's figures) and
`model.safetensors` with every floating tensor cast to `--dtype`. Loading casts back to the
model's float32 (`load_state_dict` copies), so nothing downstream changes.

The check scores the source and the export on the held-out clips of `--check-shards` (split as
`codec.lm.evaluate` splits them) and keeps the export only when it costs at most
`--max-loss` bits per second more than the source; otherwise the new folder is removed and the
exit status is 1. An existing `--out` is replaced only with `--force`, and only after the check
passed (the swap is atomic: a killed export leaves the old folder or the new one).

Exit status: 0 exported; 1 the check failed; 2 a bad checkpoint, shard folder or argument.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from codec.checkpoint import CheckpointError
from codec.lm.evaluate import evaluate_checkpoint
from codec.lm.loaders import load_lm, save_lm
from codec.lm.record import TokenizerMismatchError
from codec.tokenizer.shards import ShardError

log = logging.getLogger("codec.lm.export")

DTYPES = {"float16": torch.float16, "float32": torch.float32}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m codec.lm.export",
        description="Write a token LM's weights compactly, checked on held-out clips.",
    )
    p.add_argument("--checkpoint", required=True, help="LM folder (e.g. work_dirs/lm/X/best)")
    p.add_argument("--out", required=True, help="the exported folder (e.g. checkpoints/lm_X)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float16")
    p.add_argument(
        "--check-shards",
        nargs="+",
        help="shard folders whose held-out clips the check scores (default: the LM's own)",
    )
    p.add_argument(
        "--max-loss",
        type=float,
        default=0.5,
        help="bits per second the export may cost over the source (default 0.5)",
    )
    p.add_argument("--max-clips", type=int, help="check on the first N held-out clips only")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    return p.parse_args(argv)


def export_lm(
    checkpoint: str | Path,
    out: str | Path,
    dtype: torch.dtype = torch.float16,
    check_shards: list[str] | None = None,
    max_loss: float = 0.5,
    max_clips: int | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Export `checkpoint` to `out` (see the module doc); returns the check's figures.

    Raises:
        FileExistsError: `out` exists and `force` is False.
        ValueError: a bad argument, or the check failed (nothing is left at a new `out`, and
            an existing one is untouched).
        CheckpointError, ShardError, TokenizerMismatchError.
    """
    out, checkpoint = Path(out), Path(checkpoint)
    if out.resolve() == checkpoint.resolve():
        raise ValueError("--out must differ from --checkpoint")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    if max_loss < 0:
        raise ValueError("--max-loss must be >= 0")
    model = load_lm(checkpoint)
    meta = dict(model.checkpoint_meta)
    staging = out.with_name(f".{out.name}.export")
    shutil.rmtree(staging, ignore_errors=True)
    save_lm(model, staging, meta, dtype=dtype)
    try:
        before = evaluate_checkpoint(checkpoint, check_shards, max_clips=max_clips)
        after = evaluate_checkpoint(staging, check_shards, max_clips=max_clips)
        src, dst = before.lm.bits_per_second, after.lm.bits_per_second
        figures = {
            "source": str(checkpoint),
            "dtype": str(dtype).removeprefix("torch."),
            "step": meta.get("step"),
            "check_shards": [str(s) for s in (check_shards or before.extra["shards"])],
            "held_out_clips": before.held_out_clips,
            "bits_per_second_source": round(src, 3),
            "bits_per_second_export": round(dst, 3),
            "max_loss": max_loss,
        }
        if dst - src > max_loss:
            raise ValueError(
                f"the {figures['dtype']} export costs {dst - src:.3f} bit/s over the source "
                f"({dst:.3f} against {src:.3f}; allowed {max_loss}): not exported"
            )
        # the checked weights: the same model cast the same way, now with the check's figures
        save_lm(model, out, {**meta, "export": figures}, dtype=dtype)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        figures = export_lm(
            args.checkpoint, args.out, DTYPES[args.dtype], args.check_shards,
            args.max_loss, args.max_clips, args.force,
        )  # fmt: skip
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if "not exported" in str(e) else 2
    except (CheckpointError, ShardError, TokenizerMismatchError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in Path(args.out).iterdir()) / 2**20
    print(
        f"exported {args.checkpoint} -> {args.out} ({figures['dtype']}, {size:.2f} MiB): "
        f"held-out {figures['bits_per_second_export']:.3f} bit/s against the source's "
        f"{figures['bits_per_second_source']:.3f} on {figures['held_out_clips']} clips"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
