"""Tokenize a dataset into code shards, decode shards back to audio, report codebook usage.

    python -m codec.tokenizer encode --checkpoint DIR --window 3 --input data/demo --out codes/
    python -m codec.tokenizer encode --codec encodec --bandwidth 1.5 --encodec-weights FILE \\
        --input FOLDER --dataset folder --out codes_encodec/
    torchrun --nproc-per-node 4 -m codec.tokenizer encode ...      (each rank: its own shards)
    python -m codec.tokenizer decode --shards codes/ --out wavs/
    python -m codec.tokenizer stats --shards codes/ [--json]

A rerun of `encode` into the same --out resumes: finished shards are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch

from codec.audio import AudioError
from codec.checkpoint import CheckpointError, read_config
from codec.models.base import Codec
from codec.models.registry import BACKENDS, family, get_backend, load_codec
from codec.tokenizer.inputs import DATASETS, list_inputs
from codec.tokenizer.runner import decode_shards, encode_dataset
from codec.tokenizer.shards import ShardError, iter_codes, read_index, read_manifest
from codec.tokenizer.stats import CodebookCounter, format_stats

log = logging.getLogger("codec.tokenizer.cli")
# codec/models/registry.py: a new backend is a new --codec choice (reference codecs such as
# Opus have no codes to write, so they are none)
CODECS = tuple(n for n, b in BACKENDS.items() if b.needs_weights)


class UsageError(ValueError):
    """Arguments that do not fit together (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m codec.tokenizer",
        description="Dataset tokenization with ALMTokenizer or EnCodec checkpoints.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encode", help="write the codes of every clip as shards")
    _add_codec_args(enc)
    enc.add_argument("--window", type=int, help="ALMTokenizer window size w (e.g. 2..10)")
    enc.add_argument("--bandwidth", type=float, default=1.5, help="EnCodec kbps (default 1.5)")
    enc.add_argument("--input", help="dataset root or folder of audio files")
    enc.add_argument("--dataset", choices=DATASETS, help="layout of --input (default: guessed)")
    enc.add_argument("--split", default="all", choices=("train", "val", "test", "all"))
    enc.add_argument("--max-clips", type=int, help="a seeded subset of this many clips")
    enc.add_argument("--out", required=True, help="output folder for shards and index")
    enc.add_argument("--shard-size", type=int, default=2000, help="clips per shard")
    enc.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    enc.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    enc.add_argument("--max-seconds", type=float, default=600.0, help="refuse longer clips")
    enc.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    enc.add_argument("--dist-timeout-hours", type=float, default=24.0)
    enc.add_argument("--quiet", action="store_true", help="no progress bar")

    dec = sub.add_parser("decode", help="turn shards back into wav files")
    dec.add_argument("--shards", required=True, help="folder written by encode")
    dec.add_argument("--out", required=True, help="folder for the wav files")
    _add_codec_args(dec)
    dec.add_argument("--limit", type=int, help="decode only the first N clips")
    dec.add_argument("--quiet", action="store_true")

    st = sub.add_parser("stats", help="codebook usage per RVQ layer")
    st.add_argument("--shards", required=True, help="folder written by encode")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.add_argument("--top", type=int, default=10, help="most frequent codes to list")
    return p


def _add_codec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codec", choices=CODECS, help="default: from the checkpoint's config")
    p.add_argument("--checkpoint", help="checkpoint folder of ours (model.safetensors + json)")
    p.add_argument("--encodec-weights", help="official EnCodec file encodec_24khz-d7cc33bc.th")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


# --- codec loading ------------------------------------------------------------------------------
def resolve_codec_name(args: argparse.Namespace) -> str:
    if args.checkpoint and args.encodec_weights:
        raise UsageError("give --checkpoint or --encodec-weights, not both")
    if args.encodec_weights:
        if args.codec is not None and family(args.codec) != "encodec":
            raise UsageError("--encodec-weights is for --codec encodec")
        return "encodec_official"
    if args.checkpoint:
        name = read_config(args.checkpoint)["codec"]
        if args.codec is not None and family(args.codec) != name:
            raise UsageError(f"--codec {args.codec} but {args.checkpoint} holds a {name} model")
        return name
    if args.codec is not None:
        return str(args.codec)  # its backend's default weights (load_tokenizer_codec)
    raise UsageError("--checkpoint is required (or --codec NAME to use its default weights)")


def load_tokenizer_codec(
    name: str, checkpoint: str | None, encodec_weights: str | None, bandwidth: float = 1.5
) -> Codec:
    """The codec to tokenize with: the official EnCodec file `encodec_weights`, else the
    checkpoint folder, else the first default weights of the backends of `name`'s family
    (codec/models/registry.py; for "encodec": the official file in the torch hub cache, then our
    bundled checkpoint). A bandwidth-setting codec is set to `bandwidth` kbps."""
    if encodec_weights is not None:
        model = get_backend("encodec_official").load(Path(encodec_weights))
    elif checkpoint is not None:
        model = load_codec(checkpoint)
        model.weights_source = f"checkpoint:{checkpoint}"
    else:
        backends = sorted(
            (b for b in BACKENDS.values() if family(b.name) == family(name)),
            key=lambda b: b.name == family(name),  # pretrained variants before ours
        )
        found = next(((b, p) for b in backends if (p := b.find_default()) is not None), None)
        if found is None:
            looked = [str(p) for b in backends for p in b.default_paths()]
            raise UsageError(
                f"no weights for --codec {name} (looked in {', '.join(looked) or 'nowhere'}); "
                "pass --checkpoint or --encodec-weights"
            )
        model = found[0].load(found[1])
    if model.setting().kind == "bandwidth":
        model.apply_setting(bandwidth)
    return model.eval()


def resolve_window(codec: Codec, window: int | None) -> int | None:
    if codec.setting().kind != "window":  # asked on the interface, not by name
        if window is not None:
            log.warning("--window has no meaning for %s (its setting is not a window); ignored",
                        codec.name)  # fmt: skip
        return None
    if window is None:
        raise UsageError(f"--window is required for {codec.name}")
    args = getattr(getattr(codec, "config", None), "base_args", None)
    lo, hi = getattr(args, "window_min", 1), getattr(args, "window_max", None)
    if window < lo or (hi is not None and window > hi):
        raise UsageError(f"--window {window} is outside the trained range [{lo}, {hi}]")
    return window


def _device(arg: str | None) -> torch.device:
    if arg:
        dev = torch.device(arg)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {arg}: CUDA is not available")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


# --- commands -----------------------------------------------------------------------------------
def cmd_encode(args: argparse.Namespace) -> int:
    for key in ("shard_size", "batch_size"):
        if getattr(args, key) < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be >= 1")
    if args.num_workers < 0:
        raise UsageError("--num-workers must be >= 0")
    if args.max_clips is not None and args.max_clips < 1:
        raise UsageError("--max-clips must be >= 1")
    if args.input is None and args.dataset != "demo":
        raise UsageError("--input is required (or --dataset demo for the bundled set)")
    name = resolve_codec_name(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            "gloo", timeout=timedelta(hours=args.dist_timeout_hours)
        )
        started = True
    try:
        clips = list_inputs(args.dataset, args.input, args.split, args.max_clips)
        codec = load_tokenizer_codec(name, args.checkpoint, args.encodec_weights, args.bandwidth)
        window = resolve_window(codec, args.window)
        source = {
            "dataset": args.dataset,
            "input": args.input,
            "split": args.split,
            "max_clips": args.max_clips,
            "checkpoint": args.checkpoint,
            "encodec_weights": args.encodec_weights,
        }
        summary = encode_dataset(
            codec,
            clips,
            args.out,
            window=window,
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=_device(args.device),
            autocast=not args.fp32,
            max_seconds=args.max_seconds,
            source=source,
            progress=not args.quiet,
        )
    finally:
        if started:
            torch.distributed.destroy_process_group()
    print(
        f"rank {summary.rank}/{summary.world_size}: {summary.clips} clips "
        f"({summary.audio_seconds / 3600:.3f} h of audio) in {summary.seconds:.1f} s, "
        f"{summary.clips_per_second:.2f} clips/s; shards written {summary.shards_written}, "
        f"skipped (already done) {summary.shards_skipped}, load errors {summary.errors}; "
        f"codes in {args.out}"
    )
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be >= 1")
    manifest = read_manifest(Path(args.shards))
    checkpoint, weights = args.checkpoint, args.encodec_weights
    if checkpoint is None and weights is None:
        # the model that wrote the shards, as recorded in the manifest
        src = str(manifest.get("weights_source", ""))
        if src.startswith("checkpoint:"):
            checkpoint = src.removeprefix("checkpoint:")
        elif src.startswith("official:"):
            weights = src.removeprefix("official:")
        else:
            raise UsageError(
                "the shards do not record a checkpoint path; pass --checkpoint or "
                "--encodec-weights (the model that encoded them)"
            )
    name = args.codec or manifest["codec"]
    if family(name) != manifest["codec"]:
        raise UsageError(f"--codec {name} but the shards were written by {manifest['codec']}")
    bandwidth = manifest.get("bandwidth") or 1.5
    codec = load_tokenizer_codec(name, checkpoint, weights, bandwidth).to(_device(args.device))
    summary = decode_shards(args.shards, codec, args.out, args.limit, progress=not args.quiet)
    print(
        f"decoded {summary.clips} clips ({summary.audio_seconds:.1f} s of audio) "
        f"in {summary.seconds:.1f} s into {args.out}"
    )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise UsageError("--top must be >= 0")
    manifest = read_manifest(Path(args.shards))
    rows = read_index(Path(args.shards))
    counter = CodebookCounter(manifest["codebook_size"])
    for _, codes in iter_codes(Path(args.shards), rows):
        counter.update(codes)
    stats = counter.stats(args.top)
    clips = sum(1 for r in rows if not r.get("error"))
    if args.json:
        print(json.dumps({"clips": clips, **stats.to_dict()}, indent=2))
    else:
        print(
            f"{args.shards}: {manifest['codec']} (hash {manifest['checkpoint_hash']}), "
            f"window {manifest['window']}, {manifest['n_q']} codebooks, "
            f"{manifest['bitrate']:.0f} bit/s, {clips} clips"
        )
        print(format_stats(stats))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"encode": cmd_encode, "decode": cmd_decode, "stats": cmd_stats}
    try:
        return commands[args.command](args)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CheckpointError, ShardError, AudioError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
