"""The field's measures on the Reconstruct tab: ViSQOL, DNSMOS and neural F0 per codec.

The comparison table above this section has the measures that cost nothing (mel distance and
SI-SDR). The measures the field reports codecs by cost CPU: ViSQOL v3 in audio mode (48 kHz),
DNSMOS (speech only) and a neural pitch tracker, about 0.8 CPU-seconds per second of audio per
codec (bench/results/metrics_speed.md). So they sit behind one checkbox ("field measures",
off by default), like the reference codecs.

Ticked, one event, `field_measures`, scores what each player plays (the 16-bit wav the user
hears, read back) against the clip with `analysis.metrics.score.score_pair`:
- a first row, the clean original scored against itself: each measure's ceiling (ViSQOL 4.73
  for identical audio; DNSMOS of the clip itself);
- one row per learned codec at its current setting;
- one row per reference codec (Opus, Codec2) at its bitrate, when their section is shown.

Which measures apply depends on what the clip is, which the user says (`clip_kind`): speech
(DNSMOS, PESQ, F0 RMSE and voicing), a note (pitch kept: the F0 within 50 cents) or another
sound (ViSQOL, F0 RMSE and voicing). A measure that does not apply, or a clip too short for
ViSQOL (under 1 s), is left empty with its reason in the last column, never given a number.
Rows are cached by (clip hash, codec key, setting, clip kind).

It runs after each change of the learned codecs' table and of the reference codecs' table, when
its checkbox or the clip kind changes; unticked, it only hides the section.

API parameter names: `audio`, `show_field_measures`, `clip_kind`, the learned codecs' controls
(as `/reconstruct`: `window`, `bandwidth`, ...), then `show_references` and `<key>_kbps` per
reference codec (as `/reconstruct_references`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import soundfile as sf
import torch

from analysis.metrics.f0 import F0Track, track_f0
from analysis.metrics.score import ClipScores, score_pair
from app.clips import Clip, audio_path, load_clip
from app.errors import UserInputError
from app.state import Studio
from app.tabs import references as refs
from app.tabs.reconstruct import checked_settings, codec_column, controls
from app.tabs.widgets import named_handler
from codec.models.base import SAMPLE_RATE

TOGGLE_LABEL = "field measures (ViSQOL, DNSMOS, F0)"
SHOWN_BY_DEFAULT = False  # about 0.8 CPU-s per audio second per codec
CLIP_KINDS = ("speech", "note", "other")
DEFAULT_KIND = "note"
ORIGINAL = "clean original (ceiling)"
# (table header, ClipScores column, decimals)
MEASURES = (
    ("ViSQOL (MOS-LQO)", "visqol", 2),
    ("DNSMOS OVRL", "dnsmos_ovrl", 2),
    ("pitch kept", "pitch_kept", 0),
    ("F0 RMSE (cents)", "f0_rmse_cents", 0),
    ("voicing agreement", "voicing_agreement", 2),
    ("PESQ", "pesq", 2),
)
TABLE_HEADERS = ["codec", "setting", *(h for h, _, _ in MEASURES), "not scored"]
NOT_SCORED = "–"
UNDEFINED = {
    "f0_rmse_cents": "no frame voiced in both",
    "voicing_agreement": "no frames",
}


@dataclass(frozen=True)
class Target:
    """One row to score: a codec's output at one setting."""

    key: str
    label: str
    setting: str
    value: float | None
    path: str


def check_kind(kind: Any) -> str:
    k = str(kind or "").strip().lower()
    if k not in CLIP_KINDS:
        raise UserInputError(f"clip_kind must be one of {', '.join(CLIP_KINDS)}, got {kind!r}")
    return k


def _cell(scores: ClipScores, column: str, decimals: int) -> Any:
    v = scores.values[column]
    if math.isnan(v):
        return NOT_SCORED
    if column == "pitch_kept":
        return "yes" if v >= 0.5 else "no"
    return round(v, decimals) if decimals else int(round(v))


def table_row(label: str, setting: str, scores: ClipScores) -> list[Any]:
    """One table row: label, setting, the measures (`NOT_SCORED` where left out), reasons."""
    shown = [c for _, c, _ in MEASURES]
    why = {k: v for k, v in scores.not_scored.items() if k in shown}
    for c in shown:  # a value left NaN by the measure itself
        if math.isnan(scores.values[c]) and c not in why:
            why[c] = UNDEFINED.get(c, "no value")
    reasons = "; ".join(f"{k}: {v}" for k, v in why.items())
    return [label, setting, *(_cell(scores, c, d) for _, c, d in MEASURES), reasons]


def _read(path: str) -> torch.Tensor:
    """The wav a player plays, as `[1, N]` float32 at 24 kHz."""
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise UserInputError(f"{path}: expected {SAMPLE_RATE} Hz, found {sr} Hz")
    return torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))[None]


def _reference_f0(studio: Studio, clip: Clip) -> F0Track:
    return studio.results.get_or_compute(
        (clip.key, "field", "f0"), lambda: track_f0(clip.wav[0], SAMPLE_RATE)
    )


def _scores(studio: Studio, clip: Clip, kind: str, target: Target | None) -> ClipScores:
    """`target`'s scores against the clip (None: the clip against itself), cached."""

    def compute() -> ClipScores:
        estimate = clip.wav if target is None else _read(target.path)
        return score_pair(
            clip.wav,
            estimate,
            SAMPLE_RATE,
            speech=kind == "speech",
            pitched=kind == "note",
            reference_f0=_reference_f0(studio, clip),
        )

    key = "original" if target is None else target.key
    value = None if target is None else target.value
    return studio.results.get_or_compute((clip.key, "field", key, value, kind), compute)


def _targets(
    studio: Studio, clip: Clip, values: list[Any], show_refs: bool, ref_values: list[Any]
) -> list[Target]:
    settings = checked_settings(studio, values)
    out = []
    for c in studio.codecs:
        column = codec_column(studio, clip, c, settings[c.key])
        out.append(Target(c.key, c.label, c.setting.label(settings[c.key]), settings[c.key],
                          column.audio))  # fmt: skip
    if show_refs and studio.references:
        for c, v in zip(studio.references, refs.check_values(studio, ref_values)):
            column = refs.reference_column(studio, clip, c, v)
            out.append(Target(c.key, c.label, c.setting.label(v), v, column.audio))
    return out


def field_measures(
    studio: Studio, audio: Any, show: Any, kind: Any, *values: Any, progress: Any = None
) -> list[Any]:
    """The section's visibility, then the table (the original's row first). `values`: the
    learned codecs' controls, then `show_references` and one bitrate per reference codec.
    Unticked (or no clip yet): only the visibility changes."""
    n_ctl = len(controls(studio))
    if len(values) != n_ctl + 1 + len(studio.references):
        raise UserInputError(
            f"expected {n_ctl} codec settings, show_references and "
            f"{len(studio.references)} reference bitrates"
        )
    shown = bool(show)
    if not shown or audio_path(audio) is None:
        return [gr.update(visible=shown), gr.skip()]
    kind = check_kind(kind)
    clip = load_clip(audio, studio.config.max_seconds)
    targets = _targets(
        studio, clip, list(values[:n_ctl]), bool(values[n_ctl]), list(values[n_ctl + 1 :])
    )
    rows = []
    for i, t in enumerate([None, *targets]):
        if progress is not None:
            progress(i / (len(targets) + 1), desc=ORIGINAL if t is None else t.label)
        scores = _scores(studio, clip, kind, t)
        rows.append(table_row(ORIGINAL, "", scores) if t is None else
                    table_row(t.label, t.setting, scores))  # fmt: skip
    return [gr.update(visible=True), rows]


def build(
    studio: Studio,
    audio_in: gr.Audio,
    widgets: list[gr.components.Component],
    triggers: list[Any],
    reference_inputs: list[gr.components.Component],
) -> None:
    """Lay out the section and wire its event (inside the Reconstruct tab's context).

    Args:
        widgets: the learned codecs' controls (`reconstruct.controls` order).
        triggers: the tables' `.change` events it follows.
        reference_inputs: the reference section's checkbox and bitrate radios (empty without
            reference codecs)."""
    show = gr.Checkbox(
        value=SHOWN_BY_DEFAULT,
        label=TOGGLE_LABEL,
        info="The measures codec papers report: ViSQOL v3 (audio mode), DNSMOS (speech) and "
        "pitch from a neural tracker, for each player against the clip. About 0.8 s of CPU "
        "per second of audio per codec.",
        elem_id="show_field_measures",
    )
    with gr.Column(visible=SHOWN_BY_DEFAULT, elem_id="field_measures") as section:
        kind = gr.Radio(
            list(CLIP_KINDS),
            value=DEFAULT_KIND,
            label="The clip is (decides which measures apply)",
            info="speech: DNSMOS and PESQ; note: pitch kept (F0 within 50 cents); "
            "other: ViSQOL and the F0 track only",
            elem_id="clip_kind",
        )
        table = gr.Dataframe(
            headers=TABLE_HEADERS,
            label="Field measures (the first row: the clean clip, each measure's ceiling)",
            interactive=False,
            elem_id="field_table",
        )

    def on_measures(audio, show, kind, *values, progress):
        return field_measures(studio, audio, show, kind, *values, progress=progress)

    names = [n for _, n in controls(studio)]
    ref_names = (
        ["show_references", *(f"{c.key}_kbps" for c in studio.references)]
        if studio.references
        else []
    )
    inputs = [audio_in, show, kind, *widgets, *reference_inputs]
    if not studio.references:  # keep the handler's shape: show_references is False
        hidden = gr.Checkbox(value=False, visible=False)
        inputs.append(hidden)
        ref_names = ["show_references"]
    gr.on(
        [*triggers, show.change, kind.change],
        named_handler(
            studio,
            on_measures,
            ["audio", "show_field_measures", "clip_kind", *names, *ref_names],
            progress=True,
        ),
        inputs,
        [section, table],
        api_name="field_measures",
    )
