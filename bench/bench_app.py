"""Server-side latency of the app's main actions, ALMTokenizer vs EnCodec in the same run.

    python bench/bench_app.py                    # bundled checkpoints (random-init fallback)
    python bench/bench_app.py --repeats 5 --alm-checkpoint DIR --encodec-weights FILE

Measures the app's own handlers (`app/tabs/*`), not the browser: a window-slider move on a 5 s
clip (the ALMTokenizer column; EnCodec comes from the cache), a full reconstruction of a new 5 s
clip, a timbre transfer of a 5 s clip and an 8-step traversal bass A3 -> clarinet A6. Each
figure is the median over `--repeats` runs on inputs that miss every result cache (the dataset
latents and group centroids are warm, as in the running app). Targets on a 2-core CPU: <= 1 s
for the slider move and the timbre transfer (reported, not asserted).
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from analysis.traversal import traverse  # noqa: E402
from app.cli import build_parser, config_from_args  # noqa: E402
from app.clips import load_clip, write_wav  # noqa: E402
from app.state import Studio, weights_source  # noqa: E402
from app.tabs import reconstruct, timbre, traversal  # noqa: E402
from app.tabs.timbre import transfer_one  # noqa: E402

TARGET_S = 1.0


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(fn: Callable[[int], object], repeats: int) -> float:
    """Median seconds of fn(i) over i = 0..repeats-1 (fn(-1) runs first as a warm-up)."""
    fn(-1)
    return statistics.median(timed(lambda i=i: fn(i)) for i in range(repeats))


def five_second_clips(studio: Studio, n: int, seconds: float) -> list[str]:
    """`n` distinct `seconds`-long wavs (a speech clip tiled, plus a per-clip offset of noise so
    every clip has its own hash and misses the caches)."""
    speech = next((s for s in studio.sounds if s.is_speech), studio.sounds[0])
    base = load_clip(str(speech.path), 600).wav
    reps = int(seconds * 24000 // base.shape[-1]) + 1
    wav = base.repeat(1, reps)[:, : int(seconds * 24000)]
    g = torch.Generator().manual_seed(0)
    return [
        write_wav(
            studio.out_dir / "bench", f"clip{i}", wav + 1e-4 * torch.randn(wav.shape, generator=g)
        )
        for i in range(n)
    ]


def row(name: str, alm: float, enc: float, total: float, ratio: bool = True) -> str:
    r = f"{alm / enc:>7.2f}" if ratio and enc > 1e-6 else f"{'-':>7}"
    return f"| {name:<44} | {alm:>8.3f} | {enc:>8.3f} | {total:>8.3f} | {r} |"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.description = "Benchmark the app's handlers (accepts the app's model/data flags)."
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    cfg = config_from_args(args, parser)
    cfg.max_seconds = max(cfg.max_seconds, args.seconds + 1)
    logging.basicConfig(level=logging.WARNING)
    torch.set_grad_enabled(False)

    studio = Studio.load(cfg)
    w = cfg.window
    waypoints = studio.default_waypoints()
    target = "cello" if "cello" in studio.instruments else studio.instruments[0]
    n = args.repeats + 1
    clips = five_second_clips(studio, 6 * n, args.seconds)
    it = iter(clips)

    # --- slider move: set_window on a clip already reconstructed at another window -----------
    slider_clips = [next(it) for _ in range(n)]
    for c in slider_clips:
        reconstruct.reconstruct(studio, c, w, 1.5)
    other_w = w + 1 if w < 10 else w - 1
    slider = median(
        lambda i: reconstruct.set_window(studio, slider_clips[i], other_w, 1.5), args.repeats
    )
    fresh_w = [x for x in range(2, 11) if x not in (w, other_w)]
    slider_alm = median(  # the ALMTokenizer column at a window not computed yet
        lambda i: reconstruct.alm_column(
            studio, load_clip(slider_clips[i], 600), fresh_w[(i + 1) % len(fresh_w)]
        ),
        args.repeats,
    )
    slider_enc = median(  # the cached EnCodec column (what a slider move costs for EnCodec)
        lambda i: reconstruct.encodec_column(studio, load_clip(slider_clips[i], 600), 1.5),
        args.repeats,
    )

    # --- a new clip: both columns computed ---------------------------------------------------
    new_clips = [next(it) for _ in range(n)]
    full_alm = median(
        lambda i: reconstruct.alm_column(studio, load_clip(new_clips[i], 600), w), args.repeats
    )
    full_enc = median(
        lambda i: reconstruct.encodec_column(studio, load_clip(new_clips[i], 600), 1.5),
        args.repeats,
    )
    fresh = [next(it) for _ in range(n)]
    full = median(lambda i: reconstruct.reconstruct(studio, fresh[i], w, 3.0), args.repeats)

    # --- timbre transfer: a new clip, then a strength change on the same clip ----------------
    def transfer_part(codec, paths, alpha=lambda i: 1.0):
        return lambda i: transfer_one(studio, codec, load_clip(paths[i], 600), target, alpha(i), w)

    t_new = [[next(it) for _ in range(n)] for _ in range(3)]
    t_alm = median(transfer_part(studio.alm, t_new[0]), args.repeats)
    t_enc = median(transfer_part(studio.encodec, t_new[1]), args.repeats)
    t_all = median(lambda i: timbre.transfer(studio, t_new[2][i], target, "", 1.0, w), args.repeats)
    same = [t_new[2][0]] * n
    strengths = [0.25 + 0.1 * (i + 1) for i in range(n)]
    s_alm = median(transfer_part(studio.alm, same, lambda i: strengths[i]), args.repeats)
    s_enc = median(transfer_part(studio.encodec, same, lambda i: strengths[i]), args.repeats)
    s_all = median(
        lambda i: timbre.transfer(studio, same[i], target, "", strengths[i], w), args.repeats
    )

    # --- traversal ---------------------------------------------------------------------------
    def trav(codec):
        return lambda i: traverse(codec, waypoints, studio.items, w, steps=args.steps,
                                  render_glide=False, cache_dir=cfg.cache_dir)  # fmt: skip

    tr_alm = median(trav(studio.alm), args.repeats)
    tr_enc = median(trav(studio.encodec), args.repeats)
    tr_all = median(
        lambda i: traversal.traverse_both(
            studio, waypoints, None, "steps", args.steps, "linear", w
        ),
        args.repeats,
    )

    print(
        f"# app handler latency (median of {args.repeats}), torch threads {torch.get_num_threads()}"
    )
    print(
        f"ALMTokenizer: {weights_source(studio.alm, cfg.alm_checkpoint)} (w={w}); "
        f"EnCodec: {weights_source(studio.encodec)}; dataset {cfg.dataset_root} "
        f"({len(studio.items)} clips)"
    )
    for n_ in studio.notices:
        print(f"note: {n_}")
    print()
    print(f"| {'action (seconds, server side)':<44} | {'ALMTok':>8} | {'EnCodec':>8} | "
          f"{'together':>8} | {'ALM/Enc':>7} |")  # fmt: skip
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 9}|")
    name = f"slider move, {args.seconds:g} s clip (EnCodec cached)"
    print(row(name, slider_alm, slider_enc, slider, ratio=False))
    print(row(f"new {args.seconds:g} s clip, both columns computed", full_alm, full_enc, full))
    print(row(f"timbre transfer, new {args.seconds:g} s clip -> {target}", t_alm, t_enc, t_all))
    print(row("timbre strength change, same clip", s_alm, s_enc, s_all))
    print(row(f"traversal, {args.steps} steps, {' -> '.join(waypoints)}", tr_alm, tr_enc, tr_all))
    print()
    for name, v in (
        ("slider move", slider),
        ("timbre transfer (new clip)", t_all),
        ("timbre strength change", s_all),
    ):
        verdict = "meets" if v <= TARGET_S else "MISSES"
        print(f"{name}: {v:.3f} s {verdict} the {TARGET_S:g} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
