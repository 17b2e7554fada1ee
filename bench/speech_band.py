"""Does the shared autoencoder keep speech's formants? Energy per band of its continuous path.

    python -m bench.speech_band --checkpoint checkpoints/encodec_demo \
        --checkpoint work_dirs/autoencoder_speech/best [--split val] [--speech 32] [--notes 40]

For each checkpoint (an EnCodec-family autoencoder), decode(encode(x).latents), no quantizer,
on validation clips only (choosing a checkpoint may look at them): real speech of the corpus's
`--split` and the demo set's notes of the same split. Per clip, the energy per band against
the clean clip (`analysis.metrics.bands`: < 1 kHz, 1-4 kHz, 4-12 kHz, in dB); for speech also
DNSMOS OVRL of the decoded clip beside the clean one's; for notes, pitch kept (the
autocorrelation tracker of training's own checks, cheap). With `--opl3 DIR` (default
data/corpus_opl3, when built) a third group: notes of another soundfont, off the demo's
timbres. The goal set for the autoencoder: 1-4 kHz within 3 dB of the clean clip on speech
and on notes, notes' pitch not falling.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch

from analysis.dataset import load_items
from analysis.metrics.bands import BANDS, band_loss_db
from analysis.metrics.dnsmos import Dnsmos, dnsmos
from codec.audio import load_audio
from codec.data import list_items
from codec.metrics import pitch_matches
from codec.models.registry import load_codec

log = logging.getLogger(__name__)
SR = 24000


def speech_clips(corpus: Path, split: str, n: int, seconds: float, seed: int) -> list[torch.Tensor]:
    """`n` real speech clips of the corpus's `split` (a seeded subset), `[1, 1, N]`."""
    items = [it for it in list_items("corpus", corpus, split) if it.category == "speech"]
    items = [it for it in items if "espeak" not in it.source]  # real speech only
    items = sorted(random.Random(seed).sample(items, min(n, len(items))), key=lambda i: str(i.path))
    return [_first(it.path, seconds) for it in items]


def _first(path: Path, seconds: float) -> torch.Tensor:
    """The first `seconds` of a clip, `[1, 1, N]`."""
    return load_audio(path, SR, 3600.0)[..., : int(seconds * SR)][None]


def note_clips(root: Path, split: str, n: int, seconds: float, seed: int) -> list[torch.Tensor]:
    """`n` pitched notes of the demo set's `split` (a seeded subset), `[1, 1, N]`."""
    ids = {int(it.sound_id) for it in list_items("goodsounds", root, split)}
    items = [it for it in load_items(root, include_speech=False) if it.sound_id in ids]
    items = sorted(random.Random(seed).sample(items, min(n, len(items))), key=lambda i: str(i.path))
    return [_first(it.path, seconds) for it in items]


def _mean(xs: list[float]) -> float:
    a = np.asarray(xs, dtype=float)
    return float(np.nanmean(a)) if a.size and not np.isnan(a).all() else math.nan


def corpus_notes(corpus: Path, split: str, n: int, seconds: float, seed: int) -> list[torch.Tensor]:
    """`n` notes of a corpus folder's `split` (e.g. data/corpus_opl3: another soundfont than
    the demo set's), a seeded subset, `[1, 1, N]`."""
    items = [it for it in list_items("corpus", corpus, split) if it.category == "notes"]
    items = sorted(random.Random(seed).sample(items, min(n, len(items))), key=lambda i: str(i.path))
    return [_first(it.path, seconds) for it in items]


@torch.inference_mode()
def measure(ckpt: Path, groups: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """Per group ("speech", or notes under any other name): mean band loss per band; DNSMOS
    OVRL (decoded and clean) for speech, pitch kept for notes."""
    codec = load_codec(ckpt).eval()

    def rec(x: torch.Tensor) -> torch.Tensor:
        return codec.decode(codec.encode(x).latents, None, x.shape[-1])

    out: dict[str, float] = {}
    for kind, clips in groups.items():
        bands: dict[str, list[float]] = {b: [] for b, _, _ in BANDS}
        mos, mos_clean, kept = [], [], []
        for x in clips:
            y = rec(x)
            d = band_loss_db(x, y, SR)
            if isinstance(d, dict):
                for b, v in d.items():
                    bands[b].append(v)
            if kind == "speech":
                for target, wav in ((mos, y), (mos_clean, x)):
                    m = dnsmos(wav, SR)
                    target.append(m.ovrl if isinstance(m, Dnsmos) else math.nan)
            else:
                kept.append(float(pitch_matches(y, x, SR)))
        for b, vs in bands.items():
            out[f"{kind}/{b}"] = _mean(vs)
        if kind == "speech":
            out["speech/dnsmos_ovrl"], out["speech/dnsmos_clean"] = _mean(mos), _mean(mos_clean)
        else:
            out[f"{kind}/pitch_kept"] = 100 * _mean(kept)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, action="append", required=True)
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    p.add_argument("--demo", type=Path, default=Path("data/demo"))
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--speech", type=int, default=32, help="speech clips")
    p.add_argument("--notes", type=int, default=40, help="demo notes")
    p.add_argument(
        "--opl3",
        type=Path,
        default=Path("data/corpus_opl3"),
        help="a corpus folder of notes of another soundfont (skipped when absent)",
    )
    p.add_argument("--opl3-notes", type=int, default=40, help="its notes")
    p.add_argument("--seconds", type=float, default=4.0, help="at most this much of each clip")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    groups = {
        "speech": speech_clips(args.corpus, args.split, args.speech, args.seconds, 0),
        "notes": note_clips(args.demo, args.split, args.notes, args.seconds, 0),
    }
    if args.opl3_notes and (args.opl3 / "manifest.jsonl").exists():
        groups["opl3"] = corpus_notes(args.opl3, args.split, args.opl3_notes, args.seconds, 0)
    cols = [f"speech/{b}" for b, _, _ in BANDS] + ["speech/dnsmos_ovrl", "speech/dnsmos_clean"]
    for kind in list(groups)[1:]:
        cols += [f"{kind}/{b}" for b, _, _ in BANDS] + [f"{kind}/pitch_kept"]
    print(
        f"{len(groups['speech'])} speech clips (corpus {args.split}), {len(groups['notes'])} "
        f"notes (demo {args.split})"
        + (f", {len(groups['opl3'])} notes ({args.opl3} {args.split})" if "opl3" in groups else "")
    )
    print("| checkpoint | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for ck in args.checkpoint:
        r = measure(ck, groups)
        print(f"| {ck} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
