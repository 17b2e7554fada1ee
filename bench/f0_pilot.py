"""Which F0 tracker the measures use: agreement with the labelled pitch, and speed.

    python -m bench.f0_pilot [--dataset data/demo] [--dataset data/heldout] [--trackers ...]
        [--max-clips N] [--out bench/results/f0_pilot.md]

For every labelled note of each dataset (speech and unpitched clips are left out), each
tracker's note F0 is compared with the label (MIDI `semitone`): agreement within 50 cents
(the same semitone), within 50 cents modulo octaves (how many misses are octave errors), the
notes it finds no pitch for, and the seconds of CPU per second of audio. Notes above the
neural trackers' range (B7, 1975.5 Hz) are counted and scored by the autocorrelation
fallback, as `analysis.metrics.f0.clip_note_f0` does (the autocorrelation row searches the same
extended range for them: `fallback_f0`). Each neural tracker is reported twice, from one track:
alone, and with the harmonic check that the measures use (`on_a_harmonic`).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections import defaultdict
from pathlib import Path

import torch

from analysis.dataset import load_items
from analysis.metrics.f0 import FMAX, above_range, cents, clip_note_f0, fallback_f0, track_f0
from codec.audio import load_audio

log = logging.getLogger(__name__)
SR = 24000
TRACKERS = ("autocorrelation", "crepe-tiny", "fcpe")


def midi_hz(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def note_hz(tracker: str, wav: torch.Tensor, label: float) -> tuple[float, float]:
    """(the tracker alone, the tracker with the harmonic check) for one note; the same number
    twice for the autocorrelation estimator. One track serves both."""
    if tracker == "autocorrelation":
        hz = fallback_f0(wav, SR, label)
        return hz, hz
    track = None if above_range(label) else track_f0(wav, SR, tracker)  # type: ignore[arg-type]
    raw = clip_note_f0(wav, SR, tracker, label, track, harmonic_check=False)  # type: ignore[arg-type]
    fixed = clip_note_f0(wav, SR, tracker, label, track, harmonic_check=True)  # type: ignore[arg-type]
    return raw.hz, fixed.hz


def _agree(hz: float, label: float, counts: dict[str, int], prefix: str) -> None:
    if math.isnan(hz):
        counts[prefix + "none"] += 1
        return
    c = cents(hz, label)
    counts[prefix + "ok"] += abs(c) <= 50
    counts[prefix + "oct"] += abs((c + 600) % 1200 - 600) <= 50


def run(datasets: list[Path], trackers: list[str], max_clips: int | None) -> str:
    lines = [
        "| set | tracker | notes | within 50 cents | octave-folded | no pitch | above B7 | "
        "CPU s per audio s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for root in datasets:
        items = [it for it in load_items(root, include_speech=False) if it.midi is not None]
        items = items[:max_clips] if max_clips else items
        wavs = [load_audio(it.path, SR, 10.0) for it in items]
        seconds = sum(w.shape[-1] for w in wavs) / SR
        above = sum(midi_hz(it.midi) > FMAX for it in items)
        for tr in trackers:
            counts: dict[str, int] = defaultdict(int)
            t0 = time.process_time()
            for it, wav in zip(items, wavs):
                label = midi_hz(it.midi)
                raw, fixed = note_hz(tr, wav, label)
                _agree(raw, label, counts, "raw/")
                _agree(fixed, label, counts, "")
            cpu = (time.process_time() - t0) / seconds
            n = len(items)
            variants = [("", tr)] if tr == "autocorrelation" else [
                ("raw/", f"{tr} alone"), ("", f"{tr} + harmonic check")]  # fmt: skip
            for prefix, name in variants:
                lines.append(
                    f"| {root} | {name} | {n} | {100 * counts[prefix + 'ok'] / n:.1f} % | "
                    f"{100 * counts[prefix + 'oct'] / n:.1f} % | {counts[prefix + 'none']} | "
                    f"{above} | {cpu:.3f} |"
                )
                log.info(lines[-1])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, action="append", default=None)
    p.add_argument("--trackers", nargs="+", default=list(TRACKERS))
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    table = run(args.dataset or [Path("data/demo")], args.trackers, args.max_clips)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# F0 tracker pilot\n\n`python -m bench.f0_pilot`\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
