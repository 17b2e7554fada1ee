"""What one decoder-stage step costs per decoder: EnCodec's SEANet decoder against Vocos, on the
same latents, forward + backward of a batch (the trainer's unit of work), and inference alone.

    python -m bench.bench_decoders [--checkpoint checkpoints/encodec_demo] [--batch 8]
        [--seconds 0.5] [--threads 1] [--repeats 5]

Prints milliseconds per training step (forward + L1 loss + backward) and per inference call,
the real-time factor of inference, parameter counts, and Vocos's ratios against SEANet measured
in the same run. The SEANet decoder is the checkpoint's; Vocos is `codec.models.vocos` at its
default size (untrained: the cost does not depend on the weights).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from bench.timing import median_seconds
from codec.models.encodec import EnCodecCodec
from codec.models.registry import load_codec
from codec.models.vocos import VocosConfig, VocosDecoder, count_parameters


def measure(decoder: nn.Module, latents: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(seconds per training step, seconds per inference call) of `decoder` on `latents`."""

    def step() -> None:
        decoder.zero_grad(set_to_none=True)
        decoder(latents).abs().mean().backward()

    @torch.no_grad()
    def infer() -> None:
        decoder(latents)

    return median_seconds(step, repeats), median_seconds(infer, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_decoders", description=__doc__.split("\n")[0]
    )
    p.add_argument("--checkpoint", default="checkpoints/encodec_demo", help="an EnCodec folder")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    codec = load_codec(args.checkpoint)
    if not isinstance(codec, EnCodecCodec):
        p.error(f"{args.checkpoint} is not an EnCodec checkpoint")
    c = codec.config
    frames = round(args.seconds * c.frame_rate)
    latents = torch.randn(args.batch, c.dimension, frames)
    vocos = VocosDecoder(c.dimension, c.hop_length, len(c.target_bandwidths), VocosConfig())
    audio = args.batch * frames * c.hop_length / 24000
    rows = {}
    for name, dec in (("SEANet (" + args.checkpoint + ")", codec.decoder), ("Vocos", vocos)):
        dec.train()
        step, infer = measure(dec, latents, args.repeats)
        rows[name] = (step, infer, count_parameters(dec))
    print(f"batch {args.batch} x {args.seconds:g} s, {args.threads} thread(s), median of "
          f"{args.repeats}")  # fmt: skip
    print("| decoder | parameters | train step ms | inference ms | inference x real time |")
    print("|---|---|---|---|---|")
    for name, (step, infer, n) in rows.items():
        print(f"| {name} | {n / 1e6:.2f} M | {step * 1e3:.0f} | {infer * 1e3:.0f} | "
              f"{audio / infer:.0f} |")  # fmt: skip
    (s_step, s_inf, _), (v_step, v_inf, _) = rows.values()
    print(f"Vocos / SEANet: train step {v_step / s_step:.2f}x the time, inference "
          f"{v_inf / s_inf:.2f}x the time")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
