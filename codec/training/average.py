"""Checkpoint averaging: the mean of several snapshots' weights, written as one model folder.

A run whose validation measure swings from snapshot to snapshot (the shared autoencoder's band
energy moved 5 dB between two snapshots 150 steps apart) is judged more fairly, and usually
scores better, as the mean of its last few snapshots (checkpoint averaging, as in Vaswani et al.
2017; the same idea as an EMA of the weights, applied after the fact).

    python -m codec.training.average --out work_dirs/run/avg_900_1200 \\
        work_dirs/run/step_900 work_dirs/run/step_1050 work_dirs/run/step_1200

Every folder must hold the same codec with the same model config (strict loading, checked
shapes). Floating-point tensors are averaged, the others (counters, flags) come from the last
folder. Tensors under `--keep-last` prefixes come from the last folder too: by default the
vector quantizer's codebooks, whose entries a dead-code reseed may have replaced between
snapshots, so that their mean would mix unrelated vectors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from codec.checkpoint import read_config
from codec.models.base import Codec
from codec.models.registry import load_codec

log = logging.getLogger(__name__)

KEEP_LAST = ("quantizer.",)


def average_codecs(
    folders: Sequence[str | Path], keep_last: Sequence[str] = KEEP_LAST
) -> tuple[Codec, list[str]]:
    """The last folder's codec with the mean weights of all `folders`; also the keys kept
    from the last folder. ValueError when fewer than two folders or their configs differ."""
    if len(folders) < 2:
        raise ValueError(f"averaging needs at least two checkpoint folders, got {len(folders)}")
    configs = [read_config(f) for f in folders]
    first = {k: v for k, v in configs[0].items() if k != "meta"}
    for f, cfg in zip(folders[1:], configs[1:]):
        if {k: v for k, v in cfg.items() if k != "meta"} != first:
            raise ValueError(f"{f}: its codec or model config differs from {folders[0]}'s")
    codecs = [load_codec(f) for f in folders]
    states = [c.state_dict() for c in codecs]
    mean: dict[str, torch.Tensor] = {}
    kept: list[str] = []
    for key, last in states[-1].items():
        if not last.is_floating_point() or key.startswith(tuple(keep_last)):
            mean[key] = last
            kept.append(key)
        else:
            mean[key] = torch.stack([s[key].double() for s in states]).mean(0).to(last.dtype)
    target = codecs[-1]
    target.load_state_dict(mean, strict=True)
    return target, kept


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m codec.training.average",
        description="Average the weights of several checkpoint folders of one run.",
    )
    p.add_argument("folders", nargs="+", type=Path, help="model folders, oldest first")
    p.add_argument("--out", type=Path, required=True, help="the new folder (must not exist)")
    p.add_argument(
        "--keep-last",
        nargs="*",
        default=list(KEEP_LAST),
        help="state-dict key prefixes taken from the last folder, not averaged "
        f"(default: {' '.join(KEEP_LAST)}; none: pass the flag alone)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.out.exists():
        print(f"{p.prog}: error: {args.out} exists; choose a new folder", file=sys.stderr)
        return 1
    try:
        codec, kept = average_codecs(args.folders, args.keep_last)
    except (ValueError, OSError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 1
    meta = dict(read_config(args.folders[-1]).get("meta", {}))
    meta["averaged_from"] = [str(f) for f in args.folders]
    meta["averaged_kept_last"] = list(args.keep_last)
    codec.save_pretrained(args.out, meta=meta)
    log.info("wrote %s: mean of %d folders (%d tensors from the last)", args.out,
             len(args.folders), len(kept))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
