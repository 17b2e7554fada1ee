"""Where a codec loses the pitch: octave errors, wrong pitch classes or no pitch at all, and
whether its tokens carry the pitch class and the octave.

    python -m bench.pitch_misses [--dataset data/demo] [--alm checkpoints/almtokenizer_demo]
        [--encodec checkpoints/encodec_vocos_demo] [--windows 3,6,10] [--json OUT]

Part 1 (audio): every held-out pitched note of the dataset (its val + test sounds) is
reconstructed; the f0 of the reconstruction is compared with the f0 of the original
(`codec.metrics.estimate_f0`) and each note is counted as
- kept: within 50 cents (what `bench.gates` calls "pitch kept");
- octave: within 50 cents of a whole number of octaves away;
- fifth: within 50 cents of an octave plus or minus a fifth (the 3rd harmonic taken as f0);
- other: a pitch, but another pitch class;
- unpitched: the reconstruction has no f0 (noise or silence).
Part 2 (tokens): linear probes on pooled quantized tokens (mean over time) of every note of
the dataset, CV grouped by sound id: pitch class, octave and MIDI number. A pitch class the
probe reads but the decoder loses is a decoder problem; an octave the probe cannot read is a
token problem.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from analysis.dataset import heldout_items, load_items, unseen_sound_ids
from analysis.groups import item_pitch
from analysis.probe import probe_attribute
from codec.audio import load_audio
from codec.metrics import estimate_f0
from codec.models.base import Codec
from codec.models.registry import load_codec

log = logging.getLogger("bench.pitch_misses")
KINDS = ("kept", "octave", "fifth", "other", "unpitched")


def classify(f_rec: float, f_ref: float, cents: float = 50.0) -> str:
    """One of `KINDS` for a reconstruction's f0 against the original's (Hz; NaN: no pitch)."""
    if math.isnan(f_rec):
        return "unpitched"
    d = 1200 * math.log2(f_rec / f_ref)
    if abs(d) <= cents:
        return "kept"
    if abs(d - 1200 * round(d / 1200)) <= cents:
        return "octave"
    if min(abs(d - 1200 * round(d / 1200) - s) for s in (700, -700, -500, 500)) <= cents:
        return "fifth"
    return "other"


def miss_table(
    name: str, fn: Callable[[torch.Tensor], torch.Tensor], clips: Sequence[torch.Tensor]
) -> dict[str, Any]:
    """Counts of `KINDS` over `clips` `[1, 1, N]` (pitched originals only)."""
    counts: Counter[str] = Counter()
    with torch.inference_mode():
        for wav in tqdm(clips, desc=name, leave=False):
            f_ref = estimate_f0(wav)
            if math.isnan(f_ref):
                continue
            counts[classify(estimate_f0(fn(wav)[..., : wav.shape[-1]]), f_ref)] += 1
    n = sum(counts.values())
    return {"name": name, "n": n, **{k: counts[k] / n if n else math.nan for k in KINDS}}


def token_probes(
    codec: Codec, items: Sequence[Any], window: int | None, max_seconds: float
) -> dict[str, float]:
    """Linear-probe accuracy (grouped CV) of pitch class, octave and MIDI from pooled
    quantized tokens of every pitched item."""
    pooled, classes, octaves, midis, groups = [], [], [], [], []
    with torch.inference_mode():
        for it in tqdm(items, desc=f"tokens {codec.name} w={window}", leave=False):
            note, octave = item_pitch(it)
            if note is None or octave is None:
                continue
            wav = load_audio(it.path, 24000, max_seconds)[None]
            q = codec.encode(wav, window).quantized[0]  # [D, n]
            pooled.append(q.mean(-1).numpy())
            classes.append(note)
            octaves.append(int(octave))
            midis.append(f"{note}{octave}")
            groups.append(it.sound_id)
    x = np.stack(pooled)
    out = {}
    for attr, labels in (("pitch_class", classes), ("octave", octaves), ("midi", midis)):
        s = probe_attribute(x, labels, groups, attr, codec.name)
        out[attr] = s.linear_accuracy
        out[f"{attr}_chance"] = s.chance
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pitch_misses", description=__doc__)
    p.add_argument("--dataset", default="data/demo")
    p.add_argument("--alm", default="checkpoints/almtokenizer_demo")
    p.add_argument("--encodec", default="checkpoints/encodec_vocos_demo")
    p.add_argument("--windows", default="3,6,10")
    p.add_argument("--bandwidths", default="1.5,6")
    p.add_argument("--max-seconds", type=float, default=4.0)
    p.add_argument("--no-probes", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    items = [it for it in load_items(args.dataset) if it.klass != "speech"]
    held = heldout_items(items, sound_ids=unseen_sound_ids(args.dataset))
    clips = [load_audio(it.path, 24000, args.max_seconds)[None] for it in held]
    rows, probes = [], {}
    if args.encodec:
        enc = load_codec(args.encodec).eval()
        rows.append(
            miss_table(
                "autoencoder (continuous)",
                lambda w: enc.decode(enc.encode(w).latents, None, w.shape[-1]),
                clips,
            )
        )
        for bw in (float(b) for b in args.bandwidths.split(",") if b):
            enc.set_bandwidth(bw)  # type: ignore[attr-defined]
            rows.append(miss_table(f"EnCodec {bw:g} kbps", enc.reconstruct, clips))
        if not args.no_probes:
            enc.set_bandwidth(6.0)  # type: ignore[attr-defined]
            probes["EnCodec 6 kbps"] = token_probes(enc, items, None, args.max_seconds)
    if args.alm:
        alm = load_codec(args.alm).eval()
        for w in (int(x) for x in args.windows.split(",") if x):
            rows.append(
                miss_table(f"ALMTokenizer w={w}", lambda x, w=w: alm.reconstruct(x, w), clips)
            )
            if not args.no_probes:
                probes[f"ALMTokenizer w={w}"] = token_probes(alm, items, w, args.max_seconds)
    lines = ["| setting | notes | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 2) + "|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['n']} | " + " | ".join(f"{r[k]:.0%}" for k in KINDS) + " |"
        )
    if probes:
        lines += ["", "| tokens | pitch class | octave | MIDI |", "|---|---|---|---|"]
        for name, pr in probes.items():
            cells = [
                f"{pr[a]:.0%} (chance {pr[a + '_chance']:.0%})"
                for a in ("pitch_class", "octave", "midi")
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows, "probes": probes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
