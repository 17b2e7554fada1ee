"""Latent map tab: both codecs' pooled dataset latents projected to 2-D, side by side.

The projection (UMAP by default; PCA, t-SNE, LDA), the figure and the semantic-structure scores
come from `analysis` (`Studio.latent_map` -> `analysis.maps.build_latent_map`,
`analysis.probe`). An uploaded clip is projected into both fitted maps as a star. A dropdown
lists the map's sounds and plays the chosen one.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr
import plotly.graph_objects as go

from analysis.plots import COLOR_BY
from analysis.probe import ProbeScores
from analysis.projection import METHODS
from app.clips import audio_path, load_clip
from app.errors import UserInputError, user_errors
from app.state import Studio
from app.tabs.reconstruct import check_window
from app.tabs.widgets import window_slider

COLOR_CHOICES = ("instrument", "note", "octave")
SCORE_HEADERS = [
    "codec",
    "attribute",
    "classes",
    "linear acc",
    "non-linear acc",
    "chance",
    "ARI",
    "NMI",
    "silhouette",
]


def _r(x: float) -> float | str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 3)


def score_rows(scores: dict[str, dict[str, ProbeScores]], names: dict[str, str]) -> list[list[Any]]:
    """One row per (codec, attribute) of probe scores."""
    rows = []
    for codec_name, by_attr in scores.items():
        for attr, s in by_attr.items():
            rows.append(
                [
                    names.get(codec_name, codec_name),
                    attr,
                    s.n_classes,
                    _r(s.linear_accuracy),
                    _r(s.nonlinear_accuracy),
                    _r(s.chance),
                    _r(s.ari),
                    _r(s.nmi),
                    _r(s.silhouette),
                ]
            )
    return rows


def check_choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    v = str(value or "").strip().lower()
    if v not in choices:
        raise UserInputError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return v


def latent_map(
    studio: Studio, method: Any, color_by: Any, window: Any, upload: Any, progress: Any = None
) -> tuple[go.Figure, list[list[Any]], Any, str]:
    """Figure, score table, the sound dropdown's update and a caption."""
    method = check_choice(method, METHODS, "projection")
    color_by = check_choice(color_by, tuple(c for c in COLOR_BY if c in COLOR_CHOICES), "colour")
    w = check_window(window)
    uploads = []
    if audio_path(upload) is not None:
        clip = load_clip(upload, studio.config.max_seconds)
        uploads.append((clip.name, clip.wav))
    if progress is not None:
        progress(0.05, desc=f"{method.upper()} map")
    lm = studio.latent_map(method, color_by, w, uploads)
    names = {c.name: label for label, c in studio.codecs()}
    rows = score_rows(studio.probe_scores(w), names)
    labels = [s.label for s in studio.sounds]
    caption = (
        f"{len(studio.items)} dataset clips, ALMTokenizer at w={w}. Scores: grouped 5-fold "
        "probes on pooled latents (linear SVM, RBF SVM), GMM clustering agreement and silhouette."
    )
    if uploads:
        ups = ", ".join(
            f"{label}: ({p[0, 0]:.2f}, {p[0, 1]:.2f})"
            for (label, _), p in zip(studio.codecs(), lm.uploads)
        )
        caption += f"  \nUpload '{uploads[0][0]}' placed at {ups}."
    return lm.figure, rows, gr.update(choices=labels), caption


def play_sound(studio: Studio, label: Any) -> tuple[str, str]:
    """The chosen map sound's file and a description."""
    sound = studio.sound(str(label or ""))
    if sound is None:
        raise UserInputError(f"unknown sound {label!r}; pick one from the list")
    it = sound.item
    desc = f"**{sound.label}**: {it.instrument}" + (f", {it.pitch}" if it.pitch else "")
    desc += f", {it.dynamics or '-'} ({it.klass}), file {it.path.name}"
    return str(sound.path), desc


def build(studio: Studio, initial: tuple[Any, ...] | None = None) -> None:
    """Lay out the tab and wire its events. `initial` is the warm-up's map outputs."""
    fig0, rows0, caption0 = (initial[0], initial[1], initial[3]) if initial else (None, None, "")
    with gr.Row():
        method = gr.Dropdown(list(METHODS), value="umap", label="Projection", elem_id="map_method")
        color = gr.Radio(
            list(COLOR_CHOICES), value="instrument", label="Colour by", elem_id="map_color"
        )
        window = window_slider(studio.config.window, "map_window")
        upload = gr.Audio(
            label="Place a clip on the map (optional)",
            type="filepath",
            sources=["upload", "microphone"],
            elem_id="map_upload",
        )
    draw = gr.Button("Draw map", variant="primary", elem_id="map_btn")
    caption = gr.Markdown(caption0)
    plot = gr.Plot(value=fig0, label="Latent map", elem_id="map_plot")
    scores = gr.Dataframe(
        value=rows0,
        headers=SCORE_HEADERS,
        interactive=False,
        label="Semantic-structure scores",
        elem_id="map_scores",
    )
    with gr.Row():
        sound = gr.Dropdown(
            [s.label for s in studio.sounds],
            value=None,
            label="Play a sound of the map",
            elem_id="map_sound",
        )
        player = gr.Audio(label="Sound", type="filepath", interactive=False, elem_id="map_player")
    sound_info = gr.Markdown()

    @user_errors
    def on_map(m, c, w, up, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        return latent_map(studio, m, c, w, up, progress)

    @user_errors
    def on_play(label):
        return play_sound(studio, label)

    gr.on(
        [draw.click, method.input, color.input],
        on_map,
        [method, color, window, upload],
        [plot, scores, sound, caption],
        api_name="latent_map",
    )
    sound.input(on_play, [sound], [player, sound_info], api_name="play_sound")
