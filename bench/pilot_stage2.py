"""Stage-2 pilot measurements for ALMTokenizer on a frozen EnCodec autoencoder.

Two modes (both print a markdown table, nothing is trained here):

    # score ALMTokenizer checkpoints on the demo set's held-out notes (val + test by default)
    python -m bench.pilot_stage2 --checkpoint work_dirs/demo/almtokenizer_stage2/best [...]

    # why latent MSE alone stalls: statistics of the standardised latents of an autoencoder
    python -m bench.pilot_stage2 --diagnose checkpoints/encodec_demo

Scores, per window w (3, 6, 10 by default): relative frame error ||z_hat - z||^2 / ||z||^2 in
standardised units, through the RVQ ("quantized") and without it ("continuous"); pitch kept
(`codec.metrics.pitch_matches`, a quarter tone, over the notes whose original has a measurable
pitch); SI-SDR and multi-scale mel distance of the decoded audio. The first row is the frozen
autoencoder alone (the ceiling). Clips are whole notes, cut to `--seconds`.

Diagnosis: per-channel spread and outliers after standardisation, how predictable a frame is
from the previous one, the share of variance a linear code of k numbers per w frames can keep
(PCA over stacked frames), the error of a Gaussian of the same covariance coded at the token's
33 bits (reverse water-filling), and what the decoder keeps of the pitch when the latents get
white noise or are averaged over w frames (what an MSE-optimal predictor that cannot know the
fine structure outputs).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from codec.audio import load_audio
from codec.data import list_items
from codec.metrics import estimate_f0, mel_distance, pitch_matches, si_sdr
from codec.models.base import SAMPLE_RATE
from codec.models.registry import load_codec

log = logging.getLogger("bench.pilot_stage2")


@dataclass
class Clip:
    name: str
    wav: torch.Tensor  # [1, 1, N]


@dataclass
class Row:
    label: str
    pitch: int
    n: int
    si_sdr: float
    mel: float
    latent_q: float = math.nan
    latent_c: float = math.nan

    def markdown(self) -> str:
        share = 100 * self.pitch / max(self.n, 1)
        return (
            f"| {self.label} | {self.pitch}/{self.n} ({share:.0f}%) | {self.si_sdr:+.1f} | "
            f"{self.mel:.3f} | {_fmt(self.latent_q)} | {_fmt(self.latent_c)} |"
        )


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def held_out_notes(splits: list[str], seconds: float, limit: int | None) -> list[Clip]:
    """Demo-set notes of `splits` whose original has a measurable pitch, `[1, 1, N]` each."""
    clips = []
    for split in splits:
        for it in list_items("demo", None, split):
            wav = load_audio(it.path, SAMPLE_RATE)[:, : int(seconds * SAMPLE_RATE)]
            if not math.isnan(estimate_f0(wav[0])):
                clips.append(Clip(f"{split}:{Path(it.path).stem}", wav[None]))
    return clips[:limit] if limit else clips


@torch.no_grad()
def score(model, clips: list[Clip], window: int | None, label: str) -> Row:
    """Pitch kept, SI-SDR, mel and frame errors of `model` at `window` (None: the autoencoder)."""
    ok, sdr, mel, lq, lc = 0, 0.0, 0.0, 0.0, 0.0
    for c in clips:
        n = c.wav.shape[-1]
        if window is None:
            rec = model.frontend.unpatchify(model.frontend.patchify(c.wav), n)
        else:
            rec = model.reconstruct(c.wav, window)
            frames = model.patchify(c.wav, window)
            lq += float(model.frame_error(frames, window, quantize=True))
            lc += float(model.frame_error(frames, window, quantize=False))
        ok += pitch_matches(rec[0, 0], c.wav[0, 0])
        sdr += float(si_sdr(rec[0, 0], c.wav[0, 0]))
        mel += float(mel_distance(rec, c.wav))
    k = len(clips)
    if window is None:
        return Row(label, ok, k, sdr / k, mel / k)
    return Row(label, ok, k, sdr / k, mel / k, lq / k, lc / k)


def run_scores(args: argparse.Namespace) -> None:
    clips = held_out_notes(args.splits, args.seconds, args.limit)
    print(f"{len(clips)} pitched held-out notes ({', '.join(args.splits)}), <= {args.seconds} s")
    print("\n| model | pitch kept | SI-SDR dB | mel dist | frame err (RVQ) | frame err (cont.) |")
    print("|---|---|---|---|---|---|")
    for i, path in enumerate(args.checkpoint):
        model = load_codec(path).eval()
        if i == 0:
            print(score(model, clips, None, "autoencoder alone (ceiling)").markdown(), flush=True)
        for w in args.windows:
            t0 = time.time()
            row = score(model, clips, w, f"{path} w={w}")
            print(row.markdown(), flush=True)
            log.info("w=%d scored in %.0f s", w, time.time() - t0)


def gaussian_distortion(eigenvalues: torch.Tensor, bits: float) -> float:
    """Relative MSE of a Gaussian source with these covariance eigenvalues coded at `bits`
    (reverse water-filling): what an ideal linear transform + coder reaches; a non-Gaussian
    source can do better only through structure beyond its covariance."""
    ev = eigenvalues.double()
    lo, hi = 1e-12, float(ev.max())
    for _ in range(100):  # bisect the water level theta (geometrically)
        theta = math.sqrt(lo * hi)
        rate = float(0.5 * torch.log2(ev[ev > theta] / theta).sum())
        lo, hi = (theta, hi) if rate > bits else (lo, theta)
    return float(ev.clamp(max=theta).sum() / ev.sum())


@torch.no_grad()
def diagnose(source: str, seconds: float) -> None:
    from codec.models.encodec import EnCodecCodec

    ae = load_codec(source).eval()
    if not isinstance(ae, EnCodecCodec):
        raise SystemExit(f"{source} is not an EnCodec checkpoint")
    frames = []
    for it in list_items("demo", None, "train"):
        wav = load_audio(it.path, SAMPLE_RATE)[:, : int(seconds * SAMPLE_RATE)]
        frames.append(ae.encoder(ae._pad_to_hop(wav[None]))[0])
    Z = torch.cat(frames, 1)  # (d, frames)
    mu, sd = Z.mean(1), Z.std(1)
    S = (Z - mu[:, None]) / sd[:, None]
    print(f"{len(frames)} training notes, {Z.shape[1]} frames of {Z.shape[0]} channels")
    print(f"raw std per channel: {sd.min():.2f} .. {sd.max():.2f}; |mean| <= {mu.abs().max():.2f}")
    kurt = (S**4).mean(1)
    print(
        f"standardised: kurtosis median {kurt.median():.2f}, max {kurt.max():.2f} (Gaussian 3); "
        f"max |z| {S.abs().max():.1f}; share of |z| > 5: {(S.abs() > 5).float().mean():.5f}"
    )
    x, y = S[:, :-1].T, S[:, 1:].T
    coef = torch.linalg.lstsq(x, y).solution
    print(
        "next frame from the previous one: repeat it -> relative error "
        f"{((y - x) ** 2).mean() / (y**2).mean():.2f}; best linear map -> "
        f"{((y - x @ coef) ** 2).mean() / (y**2).mean():.2f}"
    )
    print(
        "\n| w | best linear code of 33 / 64 / 128 / 256 numbers per token | Gaussian "
        "rate-distortion at 33 / 66 bits per token |"
    )
    print("|---|---|---|")
    for w in (3, 6, 10):
        blocks = []
        for z in frames:
            s = (z - mu[:, None]) / sd[:, None]
            t = s.shape[1] // w * w
            blocks.append(s[:, :t].reshape(s.shape[0], -1, w).permute(1, 2, 0).reshape(-1, w * 128))
        b = torch.cat(blocks)
        ev = torch.linalg.eigvalsh(b.T @ b / b.shape[0]).flip(0)
        cum = ev.cumsum(0) / ev.sum()
        lin = " / ".join(f"{1 - cum[k - 1]:.3f}" for k in (33, 64, 128, 256))
        rd = " / ".join(f"{gaussian_distortion(ev.clamp_min(0), bits):.3f}" for bits in (33, 66))
        print(f"| {w} | {lin} | {rd} |")
    clips = held_out_notes(["val"], seconds, None)
    print(f"\ndecoder tolerance on {len(clips)} pitched val notes (pitch kept, SI-SDR):")
    g = torch.Generator().manual_seed(0)

    def tol(label: str, fn) -> None:
        ok, sdr = 0, 0.0
        for c in clips:
            z = ae.encoder(ae._pad_to_hop(c.wav))
            rec = ae.decoder(fn(z))[..., : c.wav.shape[-1]]
            ok += pitch_matches(rec[0, 0], c.wav[0, 0])
            sdr += float(si_sdr(rec[0, 0], c.wav[0, 0]))
        print(f"- {label}: {ok}/{len(clips)}, {sdr / len(clips):+.1f} dB", flush=True)

    def window_mean(z: torch.Tensor, w: int) -> torch.Tensor:
        t = z.shape[-1]
        n = -(-t // w)
        zz = torch.nn.functional.pad(z, (0, n * w - t), mode="replicate")
        zz = zz.reshape(*z.shape[:2], n, w).mean(-1, keepdim=True).expand(-1, -1, -1, w)
        return zz.reshape(*z.shape[:2], -1)[..., :t]

    tol("clean latents", lambda z: z)
    for r in (0.3, 0.5, 0.7):
        tol(
            f"white noise at {r} x channel std",
            lambda z, r=r: z + r * sd[None, :, None] * torch.randn(z.shape, generator=g),
        )
    for w in (3, 6):
        tol(f"each channel averaged over w={w} frames", lambda z, w=w: window_mean(z, w))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pilot_stage2", description=__doc__)
    p.add_argument("--checkpoint", nargs="*", default=[], help="ALMTokenizer checkpoint folders")
    p.add_argument("--diagnose", metavar="ENCODEC_CHECKPOINT", help="latent statistics mode")
    p.add_argument("--windows", type=int, nargs="+", default=[3, 6, 10])
    p.add_argument("--splits", nargs="+", default=["val", "test"], choices=["val", "test"])
    p.add_argument("--seconds", type=float, default=2.0, help="cut each note to this length")
    p.add_argument("--limit", type=int, default=None, help="score at most this many notes")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")
    torch.set_num_threads(args.threads)
    if args.diagnose:
        diagnose(args.diagnose, args.seconds)
    if args.checkpoint:
        run_scores(args)
    if not args.diagnose and not args.checkpoint:
        p.error("give --checkpoint and/or --diagnose")
    return 0


if __name__ == "__main__":
    sys.exit(main())
