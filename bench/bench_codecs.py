"""Encode + decode of a 10 s clip with both bundled codecs, in the same run, and their ratio.

    python -m bench.bench_codecs [--seconds 10] [--repeats 3] [--threads 1] [--window 6]

ALMTokenizer's time includes the shared autoencoder it stands on (patchify = the EnCodec encoder,
unpatchify = its decoder), so the ratio isolates the cost of the bottleneck: query-token
transformers + RVQ 3 x 2048 against EnCodec's RVQ at 1.5 kbps. Prints the median of `repeats`
runs after one warm-up.
"""

from __future__ import annotations

import argparse
import sys

import torch

from bench.timing import median_seconds
from codec.models.base import Codec
from codec.models.registry import load_codec


def clip(seconds: float, sr: int = 24000) -> torch.Tensor:
    """A 10 s test signal `[1, 1, N]`: a harmonic tone with vibrato plus a little noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 220.0 * (1 + 0.01 * torch.sin(2 * torch.pi * 5 * t))
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / sr
    wav = sum(0.2 / k * torch.sin(k * phase) for k in range(1, 6))
    wav = wav + 0.01 * torch.randn(t.shape, generator=g)
    return wav.view(1, 1, -1).float()


@torch.inference_mode()
def time_codec(codec: Codec, wav: torch.Tensor, window: int | None, repeats: int) -> float:
    """Median seconds of `codec.reconstruct(wav, window)` (encode -> quantize -> decode)."""
    return median_seconds(lambda: codec.reconstruct(wav, window), repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_codecs", description=__doc__)
    p.add_argument("--alm", default="checkpoints/almtokenizer_demo")
    p.add_argument("--encodec", default="checkpoints/encodec_vocos_demo")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--window", type=int, default=6)
    p.add_argument("--bandwidth", type=float, default=1.5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    alm, enc = load_codec(args.alm).eval(), load_codec(args.encodec).eval()
    enc.set_bandwidth(args.bandwidth)  # type: ignore[attr-defined]
    wav = clip(args.seconds)
    t_alm = time_codec(alm, wav, args.window, args.repeats)
    t_enc = time_codec(enc, wav, None, args.repeats)
    print(f"{args.seconds:g} s clip, {args.threads} thread(s), median of {args.repeats}:")
    print(
        f"  ALMTokenizer w={args.window} ({alm.bitrate(args.window):.0f} bit/s): {t_alm:.3f} s "
        f"({args.seconds / t_alm:.0f}x real time)"
    )
    print(
        f"  EnCodec {args.bandwidth:g} kbps ({enc.bitrate(None):.0f} bit/s): {t_enc:.3f} s "
        f"({args.seconds / t_enc:.0f}x real time)"
    )
    print(f"  ratio ALMTokenizer / EnCodec: {t_alm / t_enc:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
