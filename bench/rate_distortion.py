"""Rate against distortion in the shared front end's latent space: how far each codec's
quantized latents fall from the continuous frames they code, per bit.

    python -m bench.rate_distortion [--config configs/stage2_corpus.yaml]
        [--alm checkpoints/almtokenizer_demo] [--encodec checkpoints/encodec_vocos_demo]
        [--windows 2 3 6 10] [--bandwidths KBPS ...] [--threads 1] [--json FILE]

Both codecs code the same frames when ALMTokenizer's front end is EnCodec's encoder (the
shipped checkpoints; the script says whether it is). For every setting it prints the bits per
second of the codes, and the relative frame error: the squared error of the decoded frames over
the frames' variance, both per channel standardised by the frames' own statistics on the clips
(so 1.0 is as bad as predicting each channel's mean). EnCodec's rows give a rate-distortion
curve (a power law fitted through them); each ALMTokenizer row is set against it: the error
EnCodec's RVQ would have at ALMTokenizer's bitrate, and the bitrate EnCodec needs for
ALMTokenizer's error. EnCodec runs at each bandwidth its checkpoint offers up to 6 kbps
(0.75 / 1.5 / 3 / 6 when its config lists 0.75; `--bandwidths` picks some). The clips are a
training config's held-out split (corpus val by source file plus demo val for the corpus mix):
validation data, safe to select by.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from analysis.codec_ops import bandwidths_for
from codec.models.almtokenizer import ALMTokenizer
from codec.models.base import Codec
from codec.models.encodec import EnCodecCodec
from codec.models.registry import load_codec
from codec.training.config import ConfigError, load_config
from codec.training.data import build_held_out_dataset


@dataclass(frozen=True)
class Row:
    codec: str
    setting: str
    bits_per_second: float
    frame_error: float


def relative_error(frames: torch.Tensor, decoded: torch.Tensor) -> float:
    """Squared error over variance, pooled over clips and frames, each channel standardised by
    the statistics of `frames` `[B, d, T]` (so channels count alike)."""
    x = frames.transpose(0, 1).reshape(frames.shape[1], -1)  # (d, B * T)
    y = decoded.transpose(0, 1).reshape(decoded.shape[1], -1)
    mean, std = x.mean(1, keepdim=True), x.std(1, keepdim=True).clamp_min(1e-8)
    err = ((y - x) / std).pow(2).sum()
    return float(err / ((x - mean) / std).pow(2).sum().clamp_min(1e-12))


def bits_per_second(model: Codec, n_q: int, window: int | None) -> float:
    """Bits per second of `n_q` codebooks: n_q * log2(codebook size) * token rate."""
    return n_q * math.log2(model.codebook_size) * model.frame_rate(window)


@torch.no_grad()
def encodec_rows(model: EnCodecCodec, wav: torch.Tensor, bandwidths: list[float]) -> list[Row]:
    rows = []
    for bw in bandwidths:
        model.set_bandwidth(bw)
        enc = model.encode(wav)
        bits = bits_per_second(model, enc.codes.shape[1], None)
        rows.append(
            Row("encodec", f"{bw:g} kbps", bits, relative_error(enc.latents, enc.quantized))
        )
    return rows


@torch.no_grad()
def alm_rows(model: ALMTokenizer, wav: torch.Tensor, windows: list[int]) -> list[Row]:
    rows = []
    t = -(-wav.shape[-1] // model.hop_length)  # frames of the unpadded clip
    for w in windows:
        frames, decoded = model.reconstruct_frames(wav, w)
        bits = bits_per_second(model, model.num_codebooks, w)
        rows.append(Row("almtokenizer", f"w={w}", bits,
                        relative_error(frames[..., :t], decoded[..., :t])))  # fmt: skip
    return rows


def power_law(rows: list[Row]) -> tuple[float, float]:
    """(a, b) of error = a * bps^b, least squares in log-log through `rows` (>= 2)."""
    xs = [math.log(r.bits_per_second) for r in rows]
    ys = [math.log(max(r.frame_error, 1e-12)) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - b * mx), b


def same_encoder(alm: ALMTokenizer, encodec: EnCodecCodec, wav: torch.Tensor) -> bool:
    """Whether ALMTokenizer's front-end frames equal EnCodec's continuous latents on `wav`."""
    frames = alm.patchify(wav, 1)
    latents = encodec.encode(wav).latents
    t = min(frames.shape[-1], latents.shape[-1])
    return frames.shape[1] == latents.shape[1] and torch.allclose(
        frames[..., :t], latents[..., :t], atol=1e-4
    )


def report(rows: list[Row], shared: bool) -> str:
    enc = [r for r in rows if r.codec == "encodec"]
    fit = power_law(enc) if len(enc) >= 2 else None
    lines = [
        f"ALMTokenizer's front end is EnCodec's encoder: {'yes' if shared else 'NO'}"
        + ("" if shared else " (the errors are in two different latent spaces)"),
        "",
        "| codec | setting | bits/s | frame error | EnCodec's error at these bits/s "
        "| bits/s EnCodec needs for this error |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        at, need = "", ""
        if fit and r.codec != "encodec":
            a, b = fit
            at = f"{a * r.bits_per_second**b:.3f}"
            need = f"{(r.frame_error / a) ** (1 / b):.0f}" if b < 0 else ""
        lines.append(f"| {r.codec} | {r.setting} | {r.bits_per_second:.0f} | "
                     f"{r.frame_error:.3f} | {at} | {need} |")  # fmt: skip
    if fit:
        per_doubling = 2 ** fit[1]
        lines += ["", f"EnCodec's curve: error = {fit[0]:.3g} * (bits/s)^{fit[1]:.3f} "
                  f"(x{per_doubling:.2f} per doubling of the bitrate)"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rate_distortion", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", default="configs/stage2_corpus.yaml",
                        help="a training config: its held-out clips")  # fmt: skip
    parser.add_argument("--alm", default="checkpoints/almtokenizer_demo")
    parser.add_argument("--encodec", default="checkpoints/encodec_vocos_demo")
    parser.add_argument("--windows", type=int, nargs="*", default=[2, 3, 6, 10])
    parser.add_argument("--bandwidths", type=float, nargs="+", default=None,
                        help="EnCodec kbps, each one the checkpoint offers (default: every one "
                        "it offers up to 6 kbps)")  # fmt: skip
    parser.add_argument("--max-clips", type=int, default=None, help="first N held-out clips")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    try:
        cfg = load_config(args.config)
        ds = build_held_out_dataset(cfg.dataloader, cfg.training.seed)
        alm, encodec = load_codec(args.alm), load_codec(args.encodec)
        if not isinstance(alm, ALMTokenizer) or not isinstance(encodec, EnCodecCodec):
            raise ValueError("--alm must be an ALMTokenizer checkpoint, --encodec an EnCodec one")
        bandwidths = bandwidths_for(encodec, args.bandwidths, f"--encodec {args.encodec}")
    except (ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    k = len(ds) if args.max_clips is None else min(args.max_clips, len(ds))
    wav = torch.stack([ds[i] for i in range(k)])  # (k, 1, N)
    alm.eval(), encodec.eval()
    rows = encodec_rows(encodec, wav, bandwidths) + alm_rows(alm, wav, args.windows)
    print(f"{k} held-out clips of {args.config} ({wav.shape[-1] / 24000:.2f} s each)")
    print(report(rows, same_encoder(alm, encodec, wav)))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
