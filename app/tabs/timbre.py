"""Timbre transfer tab: move a clip's latents toward an instrument, every codec.

The method is one of `analysis.timbre.METHODS` (default `DEFAULT_METHOD`, pitch_adain; "mean"
is the paper's z'_t = z_t + alpha (c - mean_t z_t) with c the centroid of the target group
"cello" / "cello A3"); `analysis.timbre.timbre_transfer` does the math, this tab only wires it.
"Before" is the same decode path with alpha = 0, so before/after differ only by the transfer.

Per codec the tab composes the public steps of `analysis.timbre.timbre_transfer` (encode,
`transfer_frames`, decode) so that the clip's latents and its "before" decode are
cached by clip hash: moving the strength slider or changing the target then costs one decode per
codec. tests/test_app.py checks the result equals `timbre_transfer`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import torch

from analysis.codec_ops import decode_frames, effective_window
from analysis.export import export_audio, safe_name
from analysis.latents import encode_waveform
from analysis.models import LoadedCodec
from analysis.timbre import (
    ALPHA_RANGE,
    DEFAULT_METHOD,
    METHOD_HELP,
    METHODS,
    check_method,
    transfer_frames,
)
from app.clips import Clip, load_clip, write_wav
from app.errors import UserInputError
from app.judging import judge_loader, transfer_verdicts
from app.state import Studio
from app.tabs.reconstruct import check_window
from app.tabs.widgets import named_handler, no_latents_note, studio_handler, window_slider

ANY_NOTE = "(any)"


def target_group(studio: Studio, instrument: Any, note: Any) -> str:
    """Group text such as "cello" or "cello A3" after checking the instrument exists."""
    inst = str(instrument or "").strip()
    if inst not in studio.instruments:
        raise UserInputError(
            f"unknown target instrument {instrument!r}; "
            f"choose one of {', '.join(studio.instruments)}"
        )
    n = str(note or "").strip()
    return inst if not n or n == ANY_NOTE else f"{inst} {n}"


def check_alpha(strength: Any) -> float:
    try:
        alpha = float(strength)
    except (TypeError, ValueError):
        raise UserInputError(f"strength must be a number, got {strength!r}") from None
    lo, hi = ALPHA_RANGE
    if not lo <= alpha <= hi:
        raise UserInputError(f"strength must be from {lo:g} to {hi:g}, got {alpha:g}")
    return alpha


def transfer_one(
    studio: Studio,
    entry: LoadedCodec,
    clip: Clip,
    target: str,
    alpha: float,
    window: int,
    method: str = DEFAULT_METHOD,
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """(before `[1, N]`, after `[1, N]`, effective window) for one codec, with `method`
    (`analysis.timbre.METHODS`)."""
    codec = entry.codec
    win = effective_window(codec, window)
    z = studio.results.get_or_compute(
        (clip.key, entry.key, "latents", win), lambda: encode_waveform(codec, clip.wav, win)
    )

    def decode(frames):
        return decode_frames(codec, torch.from_numpy(frames.copy()), win, z.num_samples)

    before = studio.results.get_or_compute(
        (clip.key, entry.key, "before", win), lambda: decode(z.frames)
    )
    moved, _ = transfer_frames(codec, z.frames, clip.wav, target, studio.items, alpha, method,
                               win, cache_dir=studio.config.cache_dir)  # fmt: skip
    after = decode(moved)
    return before, after, win


def transfer(
    studio: Studio,
    audio: Any,
    instrument: Any,
    note: Any,
    strength: Any,
    window: Any,
    progress: Any = None,
    method: Any = DEFAULT_METHOD,
) -> tuple[str, ...]:
    """Before/after per codec, zip path, caption."""
    method = check_method(str(method or DEFAULT_METHOD))
    target = target_group(studio, instrument, note)
    alpha = check_alpha(strength)
    w = check_window(window)
    clip = load_clip(audio, studio.config.max_seconds)
    tracks: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(studio.codecs):
        if progress is not None:
            progress(i / len(studio.codecs), desc=f"{c.label}: toward {target}")
        before, after, win = transfer_one(studio, c, clip, target, alpha, w, method)
        tag = c.key + (f"_w{win}" if win is not None else "")
        tracks[tag] = {"before": before, "after": after}
    name = safe_name(f"{Path(clip.name).stem}_to_{target}_alpha{alpha:g}", "timbre", max_len=80)
    exported = export_audio(tracks, studio.new_export_folder("timbre"), name)
    players = []
    for tag, pair in tracks.items():
        players += [write_wav(exported.folder, f"{tag}_{k}", v) for k, v in pair.items()]
    members = len(_members(studio, target))
    caption = (
        f"**{clip.name}** toward **{target}** ({members} sounds), method {method} "
        f"({METHOD_HELP[method]}), strength {alpha:g}, window w={w}. 'Before' decodes the "
        "unshifted latents."
    )
    return (*players, str(exported.zip_path), caption)


def _members(studio: Studio, target: str) -> list[Any]:
    from analysis.groups import parse_group, select_group

    return select_group(studio.items, parse_group(target, studio.instruments))


def note_choices(studio: Studio, instrument: Any) -> Any:
    """The note dropdown's update for a chosen instrument."""
    inst = str(instrument or "")
    return gr.update(choices=[ANY_NOTE, *studio.pitches(inst)], value=ANY_NOTE)


def source_path(studio: Studio, label: Any) -> str:
    sound = studio.sound(str(label or ""))
    if sound is None:
        raise UserInputError(f"unknown clip {label!r}; pick one from the list")
    return str(sound.path)


def build(studio: Studio) -> None:
    """Lay out the tab and wire its events."""
    no_latents_note(studio, "timbre transfer", "timbre_no_latents")
    speech = [s.label for s in studio.sounds if s.is_speech]
    others = [s.label for s in studio.sounds if not s.is_speech]
    instruments = studio.instruments
    default_inst = "cello" if "cello" in instruments else (instruments[0] if instruments else None)
    with gr.Row():
        with gr.Column(scale=2):
            audio = gr.Audio(
                label="Clip (upload, record, or pick a dataset/speech clip)",
                sources=["upload", "microphone"],
                type="filepath",
                elem_id="timbre_audio",
            )
            source = gr.Dropdown(
                speech + others,
                value=None,
                label="Dataset or bundled speech clip",
                elem_id="timbre_source",
            )
        with gr.Column(scale=1):
            instrument = gr.Dropdown(
                instruments,
                value=default_inst,
                label="Target instrument",
                elem_id="timbre_instrument",
            )
            note = gr.Dropdown(
                [ANY_NOTE, *studio.pitches(default_inst or "")],
                value=ANY_NOTE,
                allow_custom_value=True,
                label="Target note (optional)",
                elem_id="timbre_note",
            )
            strength = gr.Slider(
                *ALPHA_RANGE,
                value=1.0,
                step=0.05,
                label="Strength (alpha)",
                elem_id="timbre_strength",
            )
            window = window_slider(studio.config.window, "timbre_window")
            method = gr.Dropdown(
                [(f"{m}: {METHOD_HELP[m]}", m) for m in METHODS],
                value=DEFAULT_METHOD,
                label="Method (judged by ear: see the README)",
                elem_id="timbre_method",
            )
            # the transfer reads the method from a State, so its API keeps its parameters
            method_state = gr.State(DEFAULT_METHOD)
            run = gr.Button("Transfer", variant="primary", elem_id="transfer_btn")
    caption = gr.Markdown()
    players = []
    with gr.Row():
        for c in studio.codecs:
            with gr.Column():
                players.append(
                    gr.Audio(label=f"{c.label} before", type="filepath", interactive=False)
                )
                players.append(
                    gr.Audio(
                        label=f"{c.label} after",
                        type="filepath",
                        interactive=False,
                        elem_id=f"timbre_{c.key}_after",
                    )
                )
    verdicts = gr.Markdown(elem_id="timbre_heard")  # what the judge hears, per codec
    download = gr.File(label="Download (zip)", elem_id="timbre_zip")

    def on_transfer(
        audio,
        target_instrument,
        target_note,
        strength,
        window,
        transfer_method,
        progress=gr.Progress(),  # noqa: B008
    ):
        return transfer(studio, audio, target_instrument, target_note, strength, window, progress,
                        transfer_method)  # fmt: skip

    def on_method(transfer_method):
        return check_method(str(transfer_method))

    def on_instrument(target_instrument):
        return note_choices(studio, target_instrument)

    def on_source(clip):
        return source_path(studio, clip)

    # the audio judge (app/judging.py): loads in the background; after each transfer a chained
    # event says what every before/after sounds like and which pitch it has
    judge_loader(studio).start()
    labels = [c.label for c in studio.codecs]

    def on_heard(*audio, progress):
        return transfer_verdicts(studio, labels, *audio, progress=progress)

    names = [f"{c.key}_{k}" for c in studio.codecs for k in ("before", "after")]
    run.click(
        studio_handler(studio, on_transfer),
        [audio, instrument, note, strength, window, method_state],
        [*players, download, caption],
        api_name="transfer",
    ).success(
        named_handler(studio, on_heard, names, progress=True), players, [verdicts],
        api_name="transfer_judge",
    )  # fmt: skip
    instrument.input(
        studio_handler(studio, on_instrument, heavy=False),
        [instrument],
        [note],
        api_name="timbre_notes",
    )
    method.input(
        studio_handler(studio, on_method, heavy=False),
        [method],
        [method_state],
        api_name="timbre_method",
    )
    source.input(
        studio_handler(studio, on_source, heavy=False), [source], [audio], api_name="timbre_source"
    )
