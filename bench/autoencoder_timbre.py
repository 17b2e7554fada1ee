"""Does an autoencoder keep the instrument? Its continuous reconstructions judged by ear.

    python -m bench.autoencoder_timbre checkpoints/encodec_demo [OTHER_ENCODEC_DIR ...] \
        [--figure bench/results/autoencoder_spectrograms.png]

For each EnCodec checkpoint folder (the shared autoencoder under both codecs), on the demo
set's held-out val + test clips: SI-SDR of the continuous reconstruction (no quantizer), pitch
kept on pitched notes, the share the audio judge (`analysis.metrics.judge`) names as the clip's own
class, and the mean change of spectral flatness (a noise floor raises it). With `--figure`,
log spectrograms of three held-out clarinet notes: the original and each checkpoint's output.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.metrics.judge import judge_label, judge_split, load_or_fit_judge  # noqa: E402
from analysis.metrics.judge_features import FEATURE_NAMES, audio_features  # noqa: E402
from codec.audio import load_audio  # noqa: E402
from codec.metrics import estimate_f0, pitch_matches, si_sdr  # noqa: E402
from codec.models.base import Codec  # noqa: E402
from codec.models.registry import load_codec
from codec.training.swap_decoder import autoencoder_parts  # noqa: E402

FLATNESS = FEATURE_NAMES.index("flatness_mean")


@torch.no_grad()
def continuous(codec: Codec, wav: torch.Tensor) -> torch.Tensor:
    """The autoencoder's reconstruction `[1, 1, N]` of `wav` `[1, 1, N]`, no quantizer."""
    encoder, decoder = autoencoder_parts(codec)
    hop = codec.sample_rate // int(codec.frame_rate())
    pad = (-wav.shape[-1]) % hop
    z = encoder(torch.nn.functional.pad(wav, (0, pad)))
    return decoder(z)[..., : wav.shape[-1]]


def score(codec: Codec, items: list, judge) -> dict[str, float]:
    """Mean SI-SDR, pitch kept, recognised as source and flatness change over `items`."""
    rows = []
    for it in items:
        wav = load_audio(it.path).reshape(1, 1, -1)
        rec = continuous(codec, wav)
        x, y = wav.reshape(-1), rec.reshape(-1)
        label = judge_label(it)
        pitched = label != "speech" and math.isfinite(estimate_f0(x, codec.sample_rate))
        rows.append((
            float(si_sdr(y[None], x[None])),
            float(pitch_matches(y, x, codec.sample_rate)) if pitched else math.nan,
            float(judge.hear(y).label == label),
            float(audio_features(y)[FLATNESS] - audio_features(x)[FLATNESS]),
        ))  # fmt: skip
    a = np.array(rows)
    means = [float(np.nanmean(a[:, k])) for k in range(4)]
    return dict(zip(("si_sdr", "pitch_kept", "recognised", "flatness_change"), means))


def figure(codecs: list[tuple[str, Codec]], items: list, out: Path) -> None:
    """Log spectrograms: one row per clip, the original then each codec's reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + len(codecs)
    fig, ax = plt.subplots(len(items), cols, figsize=(3.2 * cols, 2.2 * len(items)), squeeze=False)
    win = torch.hann_window(1024)
    for i, it in enumerate(items):
        wav = load_audio(it.path).reshape(1, 1, -1)
        outs = [("original", wav)] + [(name, continuous(c, wav)) for name, c in codecs]
        for j, (name, w) in enumerate(outs):
            s = torch.stft(w.reshape(-1), 1024, 256, window=win, return_complex=True).abs()
            ax[i, j].imshow(20 * np.log10(s.numpy() + 1e-5), origin="lower", aspect="auto",
                            vmin=-80, vmax=40, cmap="magma")  # fmt: skip
            ax[i, j].set_title(f"{judge_label(it)} MIDI {it.midi}: {name}", fontsize=8)
            ax[i, j].set_xticks([])
            ax[i, j].set_yticks([0, 256, 512], ["0", "6", "12 kHz"], fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=45)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.autoencoder_timbre", description=__doc__)
    p.add_argument("checkpoints", nargs="+", type=Path, help="EnCodec checkpoint folders")
    p.add_argument("--dataset", type=Path, default=Path("data/demo"))
    p.add_argument("--figure", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    judge = load_or_fit_judge(args.dataset)
    held = judge_split(args.dataset)[1]
    codecs = [(str(c), load_codec(c).eval()) for c in args.checkpoints]
    print("| autoencoder | SI-SDR | pitch kept | recognised as source | flatness change |")
    print("|---|---|---|---|---|")
    for name, c in codecs:
        s = score(c, held, judge)
        print(f"| {name} | {s['si_sdr']:.2f} dB | {100 * s['pitch_kept']:.0f}% | "
              f"{100 * s['recognised']:.0f}% | {s['flatness_change']:+.3f} |")  # fmt: skip
    print(f"({len(held)} held-out clips of {args.dataset}; {judge.summary()})")
    if args.figure is not None:
        notes = [it for it in held if judge_label(it) == "clarinet"][:3]
        figure(codecs, notes, args.figure)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
