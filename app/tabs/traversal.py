"""Traversal tab: interpolate between two or more waypoints with every codec of the line-up.

Waypoints are attribute groups ("bass A3", "clarinet A6", "cello"), dataset sounds (as listed,
e.g. "flute C4 p #1") or uploads ("upload 1", "upload 2", ... refer to the uploaded files in
order; uploads not named in the list are appended). Rendering: one continuous glide, or N
discrete steps per segment (played back to back; every step is its own wav in the zip).
The latent math is `analysis.traversal.traverse`; the files are `export_traversal`'s.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import gradio as gr

from analysis.export import safe_name
from analysis.interpolate import MODES
from analysis.traversal import Waypoint, export_traversal, traverse
from app.clips import audio_path, concat_with_gaps, load_clip, write_wav
from app.errors import UserInputError
from app.judging import judge_loader, traversal_strip
from app.state import Studio
from app.tabs.latent_map import check_choice
from app.tabs.reconstruct import check_window
from app.tabs.widgets import no_latents_note, studio_handler, window_slider

RENDERINGS = ("glide", "steps")
MAX_UPLOADS = 4
MAX_WAYPOINTS = 8
STEPS_RANGE = (2, 16)
_UPLOAD_RE = re.compile(r"^upload\s*(\d+)$", re.IGNORECASE)


def _upload_paths(uploads: Any) -> list[str]:
    if uploads is None:
        return []
    values = uploads if isinstance(uploads, list | tuple) else [uploads]
    return [p for p in (audio_path(v) for v in values) if p]


def resolve_waypoints(studio: Studio, specs: Any, uploads: Any) -> list[Waypoint | str]:
    """Waypoint list from the dropdown values and the uploaded files (see module docstring).

    Raises:
        UserInputError: fewer than two waypoints, too many, or "upload k" without such a file.
        AudioError: an upload that is not usable audio.
    """
    texts = [str(s).strip() for s in (specs or []) if str(s).strip()]
    if isinstance(specs, str):
        texts = [t.strip() for t in re.split(r"->|[,\n]", specs) if t.strip()]
    paths = _upload_paths(uploads)
    if len(paths) > MAX_UPLOADS:
        raise UserInputError(f"at most {MAX_UPLOADS} uploads, got {len(paths)}")
    clips = [load_clip(p, studio.config.max_seconds) for p in paths]
    used: set[int] = set()
    out: list[Waypoint | str] = []
    for text in texts:
        m = _UPLOAD_RE.match(text)
        if m:
            k = int(m.group(1))
            if not 1 <= k <= len(clips):
                raise UserInputError(
                    f"'{text}' refers to upload {k}, but {len(clips)} file(s) were uploaded"
                )
            used.add(k - 1)
            out.append(Waypoint(clips[k - 1].name, wav=clips[k - 1].wav))
            continue
        sound = studio.sound(text)
        out.append(Waypoint(sound.label, path=sound.path) if sound is not None else text)
    out += [Waypoint(c.name, wav=c.wav) for i, c in enumerate(clips) if i not in used]
    if len(out) < 2:
        raise UserInputError(
            "a traversal needs two or more waypoints: pick groups such as 'bass A3' and "
            "'clarinet A6', dataset sounds, or upload clips"
        )
    if len(out) > MAX_WAYPOINTS:
        raise UserInputError(f"at most {MAX_WAYPOINTS} waypoints, got {len(out)}")
    return out


def _label(w: Waypoint | str) -> str:
    return w.label if isinstance(w, Waypoint) else w


def traverse_both(
    studio: Studio,
    specs: Any,
    uploads: Any,
    rendering: Any,
    steps: Any,
    mode: Any,
    window: Any,
    progress: Any = None,
) -> tuple[str, ...]:
    """One player per codec, the zip path, a caption."""
    rendering = check_choice(rendering, RENDERINGS, "rendering")
    mode = check_choice(mode, MODES, "interpolation")
    w = check_window(window)
    try:
        n_steps = int(steps)
    except (TypeError, ValueError):
        raise UserInputError(f"steps must be a whole number, got {steps!r}") from None
    if not STEPS_RANGE[0] <= n_steps <= STEPS_RANGE[1]:
        raise UserInputError(
            f"steps must be from {STEPS_RANGE[0]} to {STEPS_RANGE[1]}, got {n_steps}"
        )
    waypoints = resolve_waypoints(studio, specs, uploads)
    results = []
    for i, c in enumerate(studio.codecs):
        if progress is not None:
            progress(i / len(studio.codecs), desc=f"{c.label}: {rendering}")
        result = traverse(
            c.codec,
            waypoints,
            studio.items,
            window=w,
            steps=n_steps,
            mode=mode,
            render_steps=rendering == "steps",
            render_glide=rendering == "glide",
            cache_dir=studio.config.cache_dir,
            progress=progress is not None,
        )
        results.append(dataclasses.replace(result, codec_name=c.key))  # files named by key
    path_text = " -> ".join(_label(x) for x in waypoints)
    name = safe_name(f"{path_text}_{rendering}_{mode}", "traversal", max_len=80)
    exported = export_traversal(results, studio.new_export_folder("traversal"), name)
    players = []
    for r in results:
        wav = r.glide if rendering == "glide" else concat_with_gaps(r.steps)
        players.append(write_wav(exported.folder, f"player_{r.tag}", wav))
    n_files = len(exported.files)
    detail = (
        f"{len(results[0].steps)} steps per codec, played back to back with short gaps"
        if rendering == "steps"
        else f"one glide of {results[0].glide.shape[-1] / 24000:.2f} s per codec"
    )
    caption = f"**{path_text}** ({mode}, w={w}): {detail}. The zip holds {n_files} wav files."
    return (*players, str(exported.zip_path), caption)


def build(studio: Studio) -> None:
    """Lay out the tab and wire its events."""
    no_latents_note(studio, "the traversal", "traversal_no_latents")
    choices = studio.group_labels() + [s.label for s in studio.sounds]
    choices += [f"upload {k}" for k in range(1, MAX_UPLOADS + 1)]
    with gr.Row():
        with gr.Column(scale=2):
            waypoints = gr.Dropdown(
                choices,
                value=studio.default_waypoints(),
                multiselect=True,
                allow_custom_value=True,
                label="Waypoints, in order (groups, sounds, 'upload k')",
                elem_id="waypoints",
            )
            uploads = gr.File(
                label="Upload clips as waypoints",
                file_count="multiple",
                file_types=["audio"],
                type="filepath",
                elem_id="trav_uploads",
            )
        with gr.Column(scale=1):
            rendering = gr.Radio(
                list(RENDERINGS), value="glide", label="Rendering", elem_id="trav_rendering"
            )
            steps = gr.Slider(
                *STEPS_RANGE, value=8, step=1, label="Steps per segment", elem_id="trav_steps"
            )
            mode = gr.Radio(list(MODES), value="linear", label="Interpolation", elem_id="trav_mode")
            window = window_slider(studio.config.window, "trav_window")
            run = gr.Button("Traverse", variant="primary", elem_id="traverse_btn")
    caption = gr.Markdown()
    with gr.Row():
        players = [
            gr.Audio(label=c.label, type="filepath", interactive=False, elem_id=f"trav_{c.key}")
            for c in studio.codecs
        ]
    strip = gr.Plot(label="What the audio judge hears along the path", elem_id="trav_heard")
    zip_out = gr.File(label="All wavs (zip)", elem_id="trav_zip")
    judge_loader(studio).start()  # the audio judge (app/judging.py) loads in the background

    def on_heard(zip_path, progress=gr.Progress()):  # noqa: B008
        return traversal_strip(studio, zip_path, progress)

    def on_traverse(
        waypoints,
        uploads,
        rendering,
        steps,
        interpolation,
        window,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):
        return traverse_both(
            studio, waypoints, uploads, rendering, steps, interpolation, window, progress
        )

    run.click(
        studio_handler(studio, on_traverse),
        [waypoints, uploads, rendering, steps, mode, window],
        [*players, zip_out, caption],
        api_name="traverse",
    ).success(studio_handler(studio, on_heard), [zip_out], [strip], api_name="traverse_judge")
