"""Command line of the app: `python -m app [flags]`.

    python -m app                                  bundled checkpoints + data/demo, 127.0.0.1:7860
    python -m app --encodec-weights ~/encodec_24khz-d7cc33bc.th --dataset-root ~/good-sounds
    python -m app --port 8080 --max-seconds 20 --concurrency 2 --share
    python -m app --codec "encodec=checkpoints/encodec_small@EnCodec small"
    python -m app --lm almtokenizer=work_dirs/lm/alm_w3/best --lm encodec=work_dirs/lm/encodec_1p5

The page answers at once; the warm-up (dataset latents of every codec, the UMAP map, probes)
runs in the background with its progress on the page, and whatever a user asks first is
computed on demand.

Uploads larger than --max-upload-mb (default 50 MB) are refused by Gradio before they are
stored; only the --keep-exports newest download folders per tab are kept; Gradio's copies of
files are deleted after an hour, and the app's own output folder when it exits.

Bad flags print a message on stderr and exit with status 2; a checkpoint or dataset that cannot
be loaded exits with status 1. Nothing is downloaded; a public link is only made with --share.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import (
    DEFAULT_ALM_CHECKPOINT,
    DEFAULT_CACHE_DIR,
    DEFAULT_DATASET_ROOT,
    DEFAULT_ENCODEC_CHECKPOINT,
    WINDOW_MAX,
    WINDOW_MIN,
    AppConfig,
)

if TYPE_CHECKING:
    from app.state import Studio

log = logging.getLogger("app")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app",
        description="ALMTokenizer Studio: ALMTokenizer, EnCodec and any other registered codec "
        "side by side (Gradio).",
    )
    p.add_argument(
        "--alm-checkpoint",
        type=Path,
        default=None,
        help=f"ALMTokenizer checkpoint folder (default {DEFAULT_ALM_CHECKPOINT})",
    )
    p.add_argument(
        "--encodec-checkpoint",
        type=Path,
        default=None,
        help=f"EnCodec checkpoint folder of ours (default {DEFAULT_ENCODEC_CHECKPOINT})",
    )
    p.add_argument(
        "--encodec-weights",
        type=Path,
        default=None,
        help="official EnCodec 24 kHz weights (encodec_24khz-d7cc33bc.th), shown next to our "
        "EnCodec (default: the torch hub cache's copy, when present)",
    )
    p.add_argument(
        "--codec",
        action="append",
        default=[],
        metavar="NAME=PATH[@LABEL]",
        help="add a codec of a registered backend (repeatable; codec/models/registry.py), e.g. "
        "'encodec=checkpoints/encodec_small@EnCodec small'",
    )
    p.add_argument(
        "--lm",
        action="append",
        default=[],
        metavar="CODEC=PATH",
        help="the token LM that continues a codec on the Continue tab (repeatable; CODEC: its "
        "key or backend, e.g. almtokenizer, encodec; PATH: an LM folder or a training folder "
        "with best/ final/ latest/). Default: the first checkpoints/lm_<codec>_* trained on "
        "that codec. An LM of another codec is refused at start-up (see docs/lm.md)",
    )
    p.add_argument(
        "--dataset-root",
        type=Path,
        default=None,
        help=f"a Good-sounds root (database.sqlite + sound_files/); default {DEFAULT_DATASET_ROOT}",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        help="longest clip accepted from users, and longest continuation generated on the "
        "Continue tab, in seconds (default 30)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="requests doing model work at once (default 2)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=48,
        help="requests that may wait for model work; one more is told at once that the app "
        "is busy and how many requests are ahead (default 48)",
    )
    p.add_argument(
        "--max-disk-mb",
        type=float,
        default=500.0,
        help="cap on the app's output and Gradio cache folders together; the oldest files "
        "go first (default 500)",
    )
    p.add_argument("--share", action="store_true", help="also make a public Gradio share link")
    p.add_argument(
        "--window",
        type=int,
        default=4,
        help=f"initial ALMTokenizer window, {WINDOW_MIN}..{WINDOW_MAX} (default 4)",
    )
    p.add_argument(
        "--cache-dir",
        default=str(DEFAULT_CACHE_DIR),
        help="latent cache folder, or 'none' (default cache/latents)",
    )
    p.add_argument(
        "--export-dir",
        type=Path,
        default=None,
        help="folder for downloads (default: a temporary folder)",
    )
    p.add_argument(
        "--keep-exports",
        type=int,
        default=20,
        help="keep the newest N download folders per tab, remove older ones (default 20)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=50.0,
        help="largest upload accepted, in MB (default 50)",
    )
    p.add_argument(
        "--map-limit",
        type=int,
        default=None,
        help="use at most this many dataset clips for maps and probes (default all)",
    )
    p.add_argument(
        "--no-warmup",
        action="store_true",
        help="no background warm-up (latents, UMAP, probes): compute everything on demand",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level",
    )
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AppConfig:
    """Validate the parsed flags (`parser.error` exits with status 2 on the first problem)."""
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    if not args.host.strip():
        parser.error("--host must not be empty")
    if not 0 < args.max_seconds <= 3600:
        parser.error(f"--max-seconds must be > 0 and <= 3600, got {args.max_seconds:g}")
    if not 1 <= args.concurrency <= 64:
        parser.error(f"--concurrency must be from 1 to 64, got {args.concurrency}")
    if not 0 <= args.max_queue <= 10_000:
        parser.error(f"--max-queue must be from 0 to 10000, got {args.max_queue}")
    if not 10 <= args.max_disk_mb <= 1_000_000:
        parser.error(f"--max-disk-mb must be from 10 to 1000000, got {args.max_disk_mb:g}")
    if not WINDOW_MIN <= args.window <= WINDOW_MAX:
        parser.error(f"--window must be from {WINDOW_MIN} to {WINDOW_MAX}, got {args.window}")
    if args.keep_exports < 1:
        parser.error(f"--keep-exports must be >= 1, got {args.keep_exports}")
    if not 0 < args.max_upload_mb <= 10_000:
        parser.error(f"--max-upload-mb must be > 0 and <= 10000, got {args.max_upload_mb:g}")
    if args.map_limit is not None and args.map_limit < 3:
        parser.error(f"--map-limit must be >= 3, got {args.map_limit}")
    explicit = set()
    for flag, value in (
        ("alm_checkpoint", args.alm_checkpoint),
        ("encodec_checkpoint", args.encodec_checkpoint),
    ):
        if value is None:
            continue
        explicit.add(flag)
        if not value.is_dir():
            what = "does not exist" if not value.exists() else "is not a folder"
            parser.error(
                f"--{flag.replace('_', '-')} {value} {what} (expected a checkpoint "
                "folder with model.safetensors + config.json)"
            )
    if args.encodec_weights is not None and args.encodec_weights.is_dir():
        parser.error(
            f"--encodec-weights {args.encodec_weights} is a folder; pass the .th file "
            "(or use --encodec-checkpoint for a checkpoint folder)"
        )
    for text in args.codec:
        name, _, rest = text.partition("=")
        path = rest.partition("@")[0]
        from codec.models.registry import BACKENDS  # only imported (torch) when --codec is used

        if name not in BACKENDS:
            parser.error(f"--codec {text}: unknown backend {name!r}; known: {', '.join(BACKENDS)}")
        if path and not Path(path).exists():
            parser.error(f"--codec {text}: {path} does not exist")
    lms = []
    for text in args.lm:
        from analysis.continuation_lms import parse_lm_spec  # (torch) only when --lm is used

        try:
            name, lm_path = parse_lm_spec(text)
        except ValueError as e:
            parser.error(f"--lm: {e}")
        if not lm_path.exists():
            parser.error(f"--lm {text}: {lm_path} does not exist")
        lms.append((name, lm_path))
    root = args.dataset_root if args.dataset_root is not None else DEFAULT_DATASET_ROOT
    if not (root / "database.sqlite").is_file():
        parser.error(f"--dataset-root {root} is not a Good-sounds root (no database.sqlite)")
    cache = None if str(args.cache_dir).lower() == "none" else Path(args.cache_dir)
    return AppConfig(
        alm_checkpoint=args.alm_checkpoint or DEFAULT_ALM_CHECKPOINT,
        encodec_checkpoint=args.encodec_checkpoint or DEFAULT_ENCODEC_CHECKPOINT,
        encodec_weights=args.encodec_weights,
        dataset_root=root,
        host=args.host,
        port=args.port,
        share=args.share,
        max_seconds=args.max_seconds,
        concurrency=args.concurrency,
        max_queue=args.max_queue,
        max_disk_mb=args.max_disk_mb,
        cache_dir=cache,
        export_dir=args.export_dir,
        keep_exports=args.keep_exports,
        max_upload_mb=args.max_upload_mb,
        window=args.window,
        map_limit=args.map_limit,
        warmup=not args.no_warmup,
        codecs=tuple(args.codec),
        explicit=frozenset(explicit),
        lms=tuple(lms),
    )


def create_app(config: AppConfig) -> tuple[Studio, Any]:
    """Load models and data and build the page (the warm-up starts in `serve`)."""
    from app.state import Studio
    from app.ui import build_demo

    studio = Studio.load(config)
    return studio, build_demo(studio)


def serve(studio: Studio, demo: Any, block: bool = True) -> str:
    """Queue with the concurrency limit, launch, then start the background warm-up (unless
    disabled); returns the local URL (when not blocking)."""
    from app.ui import JS, warm_tabs

    cfg = studio.config
    # `concurrency` requests run model work at once: split the cores between them rather than
    # let each spawn a thread per core (oversubscribed, they slow each other and the server)
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.concurrency))
    # Gradio dispatches every event at once; the model work waits in `studio.gate` (app/gate.py),
    # which answers "busy, N ahead" at its bound. Gradio's own bound is only a backstop.
    demo.queue(default_concurrency_limit=None, max_size=4 * cfg.max_queue + 64)
    allowed = [str(studio.out_dir)] + ([str(cfg.export_dir)] if cfg.export_dir else [])
    _, local_url, _ = demo.launch(
        server_name=cfg.host,
        server_port=cfg.port,
        share=cfg.share,
        inbrowser=False,
        prevent_thread_lock=True,  # the warm-up starts after launch; block_thread() below
        allowed_paths=allowed,
        max_file_size=int(cfg.max_upload_mb * 1024 * 1024),
        quiet=not block,
        footer_links=["api", "settings"],
        css=_css(),
        js=JS,
    )
    studio.start_warmup(first=lambda: warm_tabs(studio))
    studio.start_disk_cap()
    if block:
        demo.block_thread()
    return local_url


def _css() -> str:
    from app.ui import CSS

    return CSS


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from codec.audio import AudioError
    from codec.checkpoint import CheckpointError

    # Gradio's uploads and served copies go to a folder of this run (the disk cap covers it
    # without touching another app's files); removed when the process ends
    if not os.environ.get("GRADIO_TEMP_DIR"):
        gradio_tmp = tempfile.mkdtemp(prefix="almstudio-gradio-")
        os.environ["GRADIO_TEMP_DIR"] = gradio_tmp
        atexit.register(shutil.rmtree, gradio_tmp, ignore_errors=True)
    try:
        studio, demo = create_app(config)
    except (CheckpointError, AudioError, FileNotFoundError, ValueError) as e:
        print(f"python -m app: error: {e}", file=sys.stderr)
        return 1
    try:
        serve(studio, demo, block=True)
    except OSError as e:  # e.g. the port is taken
        print(
            f"python -m app: error: cannot serve on {config.host}:{config.port}: {e}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0
