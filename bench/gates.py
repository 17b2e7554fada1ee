"""The quality gates of the shared autoencoder and both codecs, measured on audio.

    python -m bench.gates [--dataset data/demo] [--alm checkpoints/almtokenizer_demo]
        [--encodec checkpoints/encodec_vocos_demo] [--autoencoder checkpoints/encodec_demo]
        [--json OUT]

Scores the held-out sounds of a Good-sounds-layout dataset (its val + test sounds, never trained
on; for an independent held-out set, every clip) with `analysis.metrics.score_pair`: "pitch kept"
on pitched notes (same semitone by the neural F0 tracker, `analysis.metrics.f0`), delay-aligned
SI-SDR per category (notes, speech), ViSQOL (audio mode; the first `--visqol-clips` clips) and
DNSMOS OVRL on speech. Rows:
- the clean originals scored against themselves (every measure's ceiling);
- the autoencoder with continuous latents: decode(encode(x).latents), no quantizer, of the
  `--autoencoder` checkpoint (checkpoints/encodec_demo: the shared, frozen autoencoder);
- EnCodec at each bandwidth its checkpoint offers up to 6 kbps (1.5 / 3 / 6, and 0.75 when its
  config lists it; `--bandwidths` picks some): the shared encoder + its RVQ + its decoder (the
  bundled one decodes with Vocos);
- ALMTokenizer at w = 3, 6, 10.
Prints a table with each gate of issue 12 marked met or not, and writes JSON with `--json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from analysis.codec_ops import bandwidths_for
from analysis.dataset import heldout_items, load_items, unseen_sound_ids
from analysis.evaluate import is_speech
from analysis.metrics import score_pair
from analysis.metrics.judge import judge_label, load_or_fit_judge
from codec.audio import load_audio
from codec.models.base import Codec
from codec.models.registry import load_codec

log = logging.getLogger("bench.gates")
Reconstruct = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GateRow:
    """One operating point's audio figures."""

    name: str
    pitch_kept: float
    n_pitched: int
    si_sdr_notes: float
    si_sdr_speech: float
    n_speech: int
    recognised: float = math.nan  # share the audio judge names as the original's class
    visqol: float = math.nan  # ViSQOL audio mode, mean over the scored clips
    n_visqol: int = 0
    dnsmos_ovrl: float = math.nan  # DNSMOS OVRL over speech clips
    f0_rmse_cents: float = math.nan


# (row name, minimum pitch kept, minimum SI-SDR on notes, minimum SI-SDR on speech)
GATES: list[tuple[str, float, float | None, float | None]] = [
    ("autoencoder (continuous)", 0.95, 10.0, 6.0),
    ("EnCodec 1.5 kbps", 0.90, 4.0, None),
    ("ALMTokenizer w=3", 0.90, 3.0, None),
    ("ALMTokenizer w=6", 0.85, None, None),
    ("ALMTokenizer w=10", 0.70, None, None),
]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


@torch.inference_mode()
def score(
    name: str,
    fn: Reconstruct,
    clips: Sequence[tuple[torch.Tensor, bool]],
    judge: Any | None = None,
    labels: Sequence[str] | None = None,
    label_hz: Sequence[float | None] | None = None,
    visqol_clips: int | None = 48,
    use_f0: bool = True,
) -> GateRow:
    """Reconstruct every clip `[1, 1, N]` (with whether it is speech) and score it with
    `analysis.metrics.score_pair`; with a `judge` (`analysis.metrics.judge.Judge`) and the clips'
    `labels`, also the share of reconstructions it names as the original's class."""
    pitch, notes_sdr, speech_sdr, heard, vis, mos, rmse = [], [], [], [], [], [], []
    for i, (wav, speech) in enumerate(tqdm(clips, desc=name, leave=False)):
        rec = fn(wav)[..., : wav.shape[-1]]
        s = score_pair(
            wav, rec, 24000, speech=speech, pitched=not speech,
            label_hz=label_hz[i] if label_hz else None,
            use_visqol=visqol_clips is None or i < visqol_clips, use_f0=use_f0,
        )  # fmt: skip
        v = s.values
        (speech_sdr if speech else notes_sdr).append(v["si_sdr"])
        if not math.isnan(v["pitch_kept"]):
            pitch.append(v["pitch_kept"])
        for target, key in ((vis, "visqol"), (mos, "dnsmos_ovrl"), (rmse, "f0_rmse_cents")):
            if not math.isnan(v[key]):
                target.append(v[key])
        if judge is not None and labels is not None:
            heard.append(float(judge.hear(rec[0, 0]).label == labels[i]))
    return GateRow(
        name, _mean(pitch), len(pitch), _mean(notes_sdr), _mean(speech_sdr), len(speech_sdr),
        _mean(heard), _mean(vis), len(vis), _mean(mos), _mean(rmse),
    )  # fmt: skip


def continuous(codec: Codec) -> Reconstruct:
    """decode(encode(x).latents): the autoencoder without any quantizer."""
    return lambda wav: codec.decode(codec.encode(wav).latents, None, wav.shape[-1])


def quantized(
    codec: Codec, window: int | None = None, bandwidth: float | None = None
) -> Reconstruct:
    def fn(wav: torch.Tensor) -> torch.Tensor:
        if bandwidth is not None:
            codec.set_bandwidth(bandwidth)  # type: ignore[attr-defined]
        return codec.reconstruct(wav, window)

    return fn


def gate_table(rows: Sequence[GateRow]) -> str:
    """Markdown table of the rows, each gate marked met / not met."""
    lines = [
        "| setting | pitch kept | recognised as source | ViSQOL | DNSMOS OVRL speech "
        "| SI-SDR notes | SI-SDR speech | gate | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    gates = {g[0]: g for g in GATES}
    for r in rows:
        gate, met = "", ""
        if r.name in gates:
            _, p, sn, ss = gates[r.name]
            parts = [f"pitch >= {p:.0%}"]
            ok = r.pitch_kept >= p
            if sn is not None:
                parts.append(f"notes >= {sn:g} dB")
                ok = ok and r.si_sdr_notes >= sn
            if ss is not None and r.n_speech:
                parts.append(f"speech >= {ss:g} dB")
                ok = ok and r.si_sdr_speech >= ss
            gate, met = ", ".join(parts), "yes" if ok else "no"
        lines.append(
            f"| {r.name} | {r.pitch_kept:.0%} of {r.n_pitched} | "
            + ("-" if math.isnan(r.recognised) else f"{r.recognised:.0%}")
            + (" | -" if math.isnan(r.visqol) else f" | {r.visqol:.2f} ({r.n_visqol})")
            + (" | -" if math.isnan(r.dnsmos_ovrl) else f" | {r.dnsmos_ovrl:.2f}")
            + f" | {r.si_sdr_notes:.1f} dB | "
            f"{r.si_sdr_speech:.1f} dB ({r.n_speech}) | {gate} | {met} |"
        )
    return "\n".join(lines)


def load_clips(
    root: str,
    every_clip: bool,
    max_seconds: float,
    max_clips: int | None = None,
    seed: int = 0,
    labels: list[str] | None = None,
    split: str = "heldout",
    label_hz: list[float | None] | None = None,
) -> list[tuple[torch.Tensor, bool]]:
    """The clips to score `[1, 1, N]` with whether each is speech: the held-out sounds of
    `root` (or every clip), at most `max_clips` of them (a seeded subset). `labels`, when
    given, receives each clip's class as the audio judge names classes. `split`: "heldout"
    (val + test), or "val" alone (what choosing a checkpoint may look at) or "test"."""
    items = load_items(root)
    if not every_clip:
        splits = {"heldout": ("val", "test"), "val": ("val",), "test": ("test",)}[split]
        items = heldout_items(items, sound_ids=unseen_sound_ids(root, splits))
    if max_clips is not None and len(items) > max_clips:
        keep = sorted(random.Random(seed).sample(range(len(items)), max_clips))
        items = [items[i] for i in keep]
    if labels is not None:
        labels.extend(judge_label(it) for it in items)
    if label_hz is not None:
        label_hz.extend(
            None if it.midi is None else 440.0 * 2 ** ((it.midi - 69) / 12) for it in items
        )
    return [(load_audio(it.path, 24000, max_seconds)[None], is_speech(it)) for it in items]


def _floats(text: str) -> list[float]:
    return [float(b) for b in text.split(",") if b.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gates", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="data/demo", help="Good-sounds-layout folder")
    p.add_argument(
        "--independent", action="store_true", help="score every clip (an independent set)"
    )
    p.add_argument(
        "--split",
        choices=["heldout", "val", "test"],
        default="heldout",
        help="which unseen sounds: val + test (default), val (for choosing checkpoints), test",
    )
    p.add_argument("--alm", default="checkpoints/almtokenizer_demo")
    p.add_argument("--encodec", default="checkpoints/encodec_vocos_demo")
    p.add_argument(
        "--autoencoder",
        default="checkpoints/encodec_demo",
        help="an EnCodec folder whose own decoder is the shared autoencoder's",
    )
    p.add_argument("--windows", default="3,6,10")
    p.add_argument(
        "--bandwidths",
        default=None,
        help="EnCodec kbps, comma list, each one the checkpoint offers (default: every one it "
        "offers up to 6 kbps)",
    )
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--max-clips", type=int, default=None, help="a seeded subset of the clips")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--judge",
        action="store_true",
        help="also score 'recognised as source' with the audio judge of data/demo",
    )
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--visqol-clips", type=int, default=48, help="ViSQOL on the first N clips")
    p.add_argument("--no-f0", action="store_true", help="skip the neural F0 tracker")
    p.add_argument(
        "--references",
        action="store_true",
        help="also score the reference codecs (Opus, Codec2) at each of their bitrates",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    enc, bandwidths = None, []
    if args.encodec:
        enc = load_codec(args.encodec).eval()
        try:
            wanted = None if args.bandwidths is None else _floats(args.bandwidths)
            bandwidths = bandwidths_for(enc, wanted, f"--encodec {args.encodec}")
        except ValueError as e:
            p.error(f"--bandwidths: {e}")
    labels: list[str] = []
    hz: list[float | None] = []
    clips = load_clips(
        args.dataset, args.independent, args.max_seconds, args.max_clips, labels=labels,
        split=args.split, label_hz=hz,
    )  # fmt: skip
    judge = load_or_fit_judge("data/demo") if args.judge else None
    log.info("%d clips (%d speech)", len(clips), sum(s for _, s in clips))
    opts = {"label_hz": hz, "visqol_clips": args.visqol_clips, "use_f0": not args.no_f0}
    rows: list[GateRow] = [
        score("clean original", lambda wav: wav, clips, judge, labels, **opts)  # the ceiling
    ]
    ae = load_codec(args.autoencoder).eval()
    rows.append(score("autoencoder (continuous)", continuous(ae), clips, judge, labels, **opts))
    if enc is not None:
        for bw in bandwidths:
            rows.append(
                score(
                    f"EnCodec {bw:g} kbps",
                    quantized(enc, bandwidth=bw),
                    clips,
                    judge,
                    labels,
                    **opts,
                )  # fmt: skip
            )
    if args.alm:
        alm = load_codec(args.alm).eval()
        for w in (int(x) for x in args.windows.split(",") if x):
            rows.append(
                score(
                    f"ALMTokenizer w={w}", quantized(alm, window=w), clips, judge, labels, **opts
                )  # fmt: skip
            )
    if args.references:
        from codec.models.registry import reference_lineup

        for backend in reference_lineup():
            ref = backend.build()
            for kbps in ref.choices:
                ref.apply_setting(kbps)
                name = f"{backend.label} {ref.setting().label(kbps)}"
                rows.append(score(name, quantized(ref), clips, judge, labels, **opts))
    table = gate_table(rows)
    print(table)
    if args.json:
        out: dict[str, Any] = {"dataset": args.dataset, "rows": [asdict(r) for r in rows]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
