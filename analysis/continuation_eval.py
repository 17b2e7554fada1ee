"""Continuation judged by the audio: does the token LM keep the prompt's pitch and instrument?

For every held-out clip and every codec with an LM, the clip's first `prompt_seconds` are
continued by `seconds` (`analysis.continuation.continue_clip`), and only the generated part is
measured against the clip's labels:
- pitch kept: its note F0 (`analysis.metrics.f0.clip_note_f0`, the neural tracker) within 50
  cents of the labelled pitch (MIDI `midi` -> Hz), on pitched notes;
- instrument named: the audio judge (`analysis.metrics.judge`) names the prompt's
  instrument, on notes;
- speech heard: the judge still hears speech, on speech prompts.
Beside each, the same codec's ceiling: its reconstruction of the whole clip at the LM's
setting, measured the same way against the same labels; and the ratio continuation / ceiling
(what the LM keeps of what the codec can carry). Sets: the demo set's held-out notes (val +
test sounds, `analysis.dataset.unseen_sound_ids`) and, when present, every clip of the
independent set (data/heldout). Clips shorter than the prompt or with a silent prompt are
left out and counted.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from analysis.continuation import (
    ClipError,
    at_lm_setting,
    check_settings,
    codec_device,
    continue_clip,
)
from analysis.continuation_lms import CodecLM
from analysis.metrics.f0 import DEFAULT_TRACKER, Tracker, cents, clip_note_f0

log = logging.getLogger(__name__)

CENTS_TOL = 50.0
MEASURES = ("pitch kept", "instrument named", "speech heard")


class Hears(Protocol):
    """What the evaluation asks of the judge (`analysis.metrics.judge.Judge`)."""

    classes: tuple[str, ...]

    def hear(self, wav: torch.Tensor, sr: int = ...) -> Any: ...


@dataclass(frozen=True)
class EvalClip:
    """One labelled clip: the waveform `[1, 1, N]`, its judge class and MIDI pitch."""

    set_name: str
    name: str
    wav: torch.Tensor
    label: str
    midi: int | None
    speech: bool

    @property
    def label_hz(self) -> float | None:
        """The labelled pitch in Hz (None for speech or unpitched clips)."""
        if self.speech or self.midi is None:
            return None
        return 440.0 * 2.0 ** ((self.midi - 69) / 12.0)


def load_eval_clips(
    root: str | Path,
    set_name: str,
    every_clip: bool,
    max_clips: int | None = None,
    seed: int = 0,
    max_seconds: float = 30.0,
) -> list[EvalClip]:
    """The held-out clips of a Good-sounds-layout dataset (val + test sounds), or every clip
    (`every_clip`: an independent set), at most `max_clips` of them (a seeded subset)."""
    from analysis.dataset import heldout_items, load_items, unseen_sound_ids
    from analysis.metrics.judge import SPEECH, judge_label
    from codec.audio import load_audio

    root = Path(root)
    items = load_items(root)
    if not every_clip:
        items = heldout_items(items, sound_ids=unseen_sound_ids(root))
    if max_clips is not None and len(items) > max_clips:
        keep = sorted(random.Random(seed).sample(range(len(items)), max_clips))
        items = [items[i] for i in keep]
    out = []
    for it in items:
        label = judge_label(it)
        wav = load_audio(it.path, 24000, max_seconds)[None]
        midi = None if it.midi is None else int(it.midi)
        path, base = Path(it.path).resolve(), root.resolve()
        name = path.relative_to(base) if path.is_relative_to(base) else path.name
        out.append(EvalClip(set_name, str(name), wav, label, midi, label == SPEECH))
    return out


@dataclass
class ClipOutcome:
    """One clip continued by one codec's LM, and the codec's own reconstruction of it.

    `pitch_kept_*`: None where the clip has no labelled pitch; `named_*`: whether the judge
    names the clip's class (None where the judge does not know that class)."""

    codec: str
    set_name: str
    clip: str
    label: str
    speech: bool
    label_hz: float | None
    f0_continuation: float
    f0_reconstruction: float
    pitch_kept_continuation: bool | None
    pitch_kept_reconstruction: bool | None
    heard_continuation: str
    heard_reconstruction: str
    named_continuation: bool | None
    named_reconstruction: bool | None


@dataclass
class MeasureRow:
    """A measure's share over one set for one codec: continuation, ceiling, their ratio."""

    codec: str
    set_name: str
    measure: str
    clips: int
    continuation: float
    ceiling: float

    @property
    def ratio(self) -> float:
        """continuation / ceiling (NaN when the ceiling is 0 or unknown)."""
        ok = self.ceiling > 0 and not math.isnan(self.continuation)
        return self.continuation / self.ceiling if ok else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def summarise(outcomes: Sequence[ClipOutcome]) -> list[MeasureRow]:
    """One row per (codec, set, measure) that has clips, in first-seen order."""
    groups: dict[tuple[str, str], list[ClipOutcome]] = {}
    for o in outcomes:
        groups.setdefault((o.codec, o.set_name), []).append(o)
    rows = []
    for (codec, set_name), group in groups.items():
        pairs = {
            "pitch kept": [
                (o.pitch_kept_continuation, o.pitch_kept_reconstruction)
                for o in group
                if o.pitch_kept_continuation is not None and o.pitch_kept_reconstruction is not None
            ],
            "instrument named": [
                (o.named_continuation, o.named_reconstruction)
                for o in group
                if not o.speech and o.named_continuation is not None
            ],
            "speech heard": [
                (o.named_continuation, o.named_reconstruction)
                for o in group
                if o.speech and o.named_continuation is not None
            ],
        }
        for measure in MEASURES:
            got = pairs[measure]
            if got:
                cont, ceil = _share([bool(a) for a, _ in got]), _share([bool(b) for _, b in got])
                rows.append(MeasureRow(codec, set_name, measure, len(got), cont, ceil))
    return rows


def _pitch(
    wav: torch.Tensor, sr: int, hz: float | None, tracker: Tracker
) -> tuple[float, bool | None]:
    if hz is None:
        return math.nan, None
    f0 = clip_note_f0(wav, sr, tracker, expected_hz=hz).hz
    return f0, abs(cents(f0, hz)) <= CENTS_TOL if f0 > 0 else False


@torch.no_grad()
def score_clip(
    pair: CodecLM, clip: EvalClip, judge: Hears, settings: dict[str, Any], tracker: Tracker
) -> ClipOutcome:
    """Continue `clip` with `pair`'s LM, reconstruct it with its codec, measure both."""
    codec, lm = pair.codec.codec, pair.lm
    out = continue_clip(codec, lm, clip.wav, **settings)  # refuses an LM without a record
    with at_lm_setting(codec, lm.tokenizer) as window:  # type: ignore[arg-type]
        rec = codec.reconstruct(clip.wav.to(codec_device(codec)), window).cpu()
    sr, cont = codec.sample_rate, out.continuation
    f0_c, kept_c = _pitch(cont, sr, clip.label_hz, tracker)
    f0_r, kept_r = _pitch(rec, sr, clip.label_hz, tracker)
    heard_c, heard_r = judge.hear(cont[0, 0], sr).label, judge.hear(rec[0, 0], sr).label
    known = clip.label in judge.classes
    return ClipOutcome(
        pair.key, clip.set_name, clip.name, clip.label, clip.speech, clip.label_hz, f0_c, f0_r,
        kept_c, kept_r, heard_c, heard_r,
        heard_c == clip.label if known else None, heard_r == clip.label if known else None,
    )  # fmt: skip


@dataclass
class ContinuationReport:
    """Every clip's outcome, the per-codec table and what was left out."""

    outcomes: list[ClipOutcome]
    settings: dict[str, Any]
    codecs: dict[str, str]  # key -> description (codec + LM)
    left_out: dict[str, list[str]] = field(default_factory=dict)  # key -> "set: clip: reason"
    skipped: list[str] = field(default_factory=list)  # codecs without an LM, one line each
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> list[MeasureRow]:
        return summarise(self.outcomes)

    def to_markdown(self) -> str:
        s = self.settings
        lines = [
            "# Continuation judged by the audio", "",
            f"Prompt {s['prompt_seconds']:g} s of each clip, continued by {s['seconds']:g} s "
            f"(temperature {s['temperature']:g}, top-k {s['top_k']}, seed {s['seed']}); F0 "
            f"tracker {s['tracker']}. Continuation: the generated part only, against the "
            "clip's labels. Ceiling: the codec's reconstruction of the whole clip, against the "
            "same labels.", "",
        ]  # fmt: skip
        rows = self.rows
        for key, desc in self.codecs.items():
            lines += [f"## {key}", "", desc, ""]
            lines += [
                "| set | measure | clips | continuation | ceiling (reconstruction) | ratio |",
                "|---|---|---|---|---|---|",
            ]
            for r in (r for r in rows if r.codec == key):
                ratio = "-" if math.isnan(r.ratio) else f"{r.ratio:.2f}"
                lines.append(
                    f"| {r.set_name} | {r.measure} | {r.clips} | {r.continuation:.0%} | "
                    f"{r.ceiling:.0%} | {ratio} |"
                )
            if self.left_out.get(key):
                lines.append(f"\nLeft out: {len(self.left_out[key])} clips ({self.left_out[key][0]}"
                             + (", ..." if len(self.left_out[key]) > 1 else "") + ")")  # fmt: skip
            lines.append("")
        lines += [f"- {line}" for line in self.skipped]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        nan = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        return {
            "settings": self.settings,
            "codecs": self.codecs,
            "rows": [{k: nan(v) for k, v in r.to_dict().items()} for r in self.rows],
            "clips": [{k: nan(v) for k, v in asdict(o).items()} for o in self.outcomes],
            "left_out": self.left_out,
            "skipped": self.skipped,
        }

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """`continuation.md` and `continuation.json` in `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.files = {"md": out / "continuation.md", "json": out / "continuation.json"}
        self.files["md"].write_text(self.to_markdown())
        self.files["json"].write_text(json.dumps(self.to_dict(), indent=2))
        return self.files


def evaluate_continuations(
    pairs: Sequence[CodecLM],
    clips: Sequence[EvalClip],
    judge: Hears,
    prompt_seconds: float = 0.5,
    seconds: float = 1.0,
    temperature: float = 1.0,
    top_k: int | None = 50,
    seed: int = 0,
    tracker: Tracker = DEFAULT_TRACKER,
    progress: Callable[[str], None] | None = None,
) -> ContinuationReport:
    """Score every clip with every codec's LM (`score_clip`); clips a continuation refuses
    (`ClipError`: shorter than the prompt, a silent prompt) are left out with their reason.

    Raises:
        ValueError: a setting out of range (before any work, or on the first clip for one
            that depends on the LM's frame rate: a prompt under one frame, over the context).
    """
    settings = {"prompt_seconds": prompt_seconds, "seconds": seconds,
                "temperature": temperature, "top_k": top_k, "seed": seed}  # fmt: skip
    report = ContinuationReport([], {**settings, "tracker": tracker},
                                {p.key: p.describe() for p in pairs})  # fmt: skip
    for pair in pairs:
        check_settings(pair.lm, prompt_seconds, seconds, temperature, top_k, seed, seconds)
    for pair in pairs:
        for i, clip in enumerate(clips):
            try:
                report.outcomes.append(score_clip(pair, clip, judge, settings, tracker))
            except ClipError as e:
                report.left_out.setdefault(pair.key, []).append(
                    f"{clip.set_name}: {clip.name}: {e}"
                )
            if progress is not None:
                progress(f"{pair.key} {i + 1}/{len(clips)}")
    return report
