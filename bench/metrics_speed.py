"""Seconds of CPU per second of audio of every evaluation measure, in one run.

    python -m bench.metrics_speed [--seconds 4] [--repeats 3] [--threads 1]

On a seeded harmonic clip with noise (reference and a degraded copy), each measure of
`analysis.metrics` is timed (best of `--repeats`, after one warm-up call that loads models),
and printed as CPU seconds per audio second: what `analysis evaluate`'s clip budget is for.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

from analysis.metrics.bands import band_loss_db
from analysis.metrics.dnsmos import dnsmos
from analysis.metrics.f0 import track_f0
from analysis.metrics.quality import pesq_score, stoi_score
from analysis.metrics.visqol import visqol
from codec.metrics import estimate_f0, mel_distance, si_sdr

SR = 24000


def clip(seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * SR)) / SR
    x = 0.2 * sum(torch.sin(2 * math.pi * 196.0 * k * t) / k for k in range(1, 6))
    return x, x + 0.02 * torch.randn(x.shape, generator=g)


def measures(x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], object]]:
    return {
        "ViSQOL (audio, 48 kHz)": lambda: visqol(x, y, SR),
        "DNSMOS P.835": lambda: dnsmos(y, SR),
        "F0 FCPE": lambda: track_f0(y, SR, "fcpe"),
        "F0 CREPE tiny": lambda: track_f0(y, SR, "crepe-tiny"),
        "F0 CREPE full": lambda: track_f0(y, SR, "crepe"),
        "F0 autocorrelation": lambda: estimate_f0(y, SR),
        "STOI": lambda: stoi_score(y, x, SR),
        "PESQ (wb)": lambda: pesq_score(y, x, SR),
        "SI-SDR + mel distance": lambda: (si_sdr(y, x), mel_distance(y, x)),
        "band energy": lambda: band_loss_db(x, y, SR),
    }


def time_cpu(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: model loading is not per-clip cost
    best = math.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip", nargs="*", default=[], help="measures to leave out (substrings)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    x, y = clip(args.seconds)
    print(f"{args.seconds:g} s clip, {args.threads} thread(s), best of {args.repeats} (CPU time)")
    print("| measure | CPU s per audio s |\n|---|---|")
    for name, fn in measures(x, y).items():
        if any(s.lower() in name.lower() for s in args.skip):
            continue
        print(f"| {name} | {time_cpu(fn, args.repeats) / args.seconds:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
