"""Latent map tab: every codec's pooled dataset latents projected to 2-D, side by side.

The projection (UMAP by default; PCA, t-SNE, LDA), the figure and the semantic-structure scores
come from `analysis` (`Studio.latent_map` -> `analysis.maps.build_latent_map`,
`analysis.probe`). An uploaded clip is projected into every fitted map as a highlighted star.

Click a point to hear it: `gr.Plot` has no click event, so `CLICK_JS` (run once on page load)
listens to plotly's `plotly_click` on the map and writes the point (panel, dataset row or upload
label) as JSON into a hidden textbox (`#map_pick`), whose change event calls `pick_point`: the
player then plays that clip and the caption names it. A dropdown lists the same sounds.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import gradio as gr
import plotly.graph_objects as go

from analysis.plots import COLOR_BY
from app.clips import audio_path, load_clip
from app.errors import UserInputError
from app.state import Studio
from app.tabs.reconstruct import check_window
from app.tabs.widgets import no_latents_note, studio_handler, window_slider

if TYPE_CHECKING:
    from analysis.probe import ProbeScores

# analysis.projection.METHODS, spelled out: importing it loads scikit-learn, which the page
# does not need to answer (tests/test_app.py checks they agree)
METHODS = ("umap", "pca", "tsne", "lda")
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
UPLOAD_MARKER = {
    "symbol": "star",
    "size": 22,
    "color": "#e11d48",
    "line": {"width": 2, "color": "black"},
}

# Runs once on page load: bind plotly_click on the map's plot (again after every redraw) and
# hand the clicked point to the hidden #map_pick textbox.
CLICK_JS = """
() => {
  const pick = (p) => {
    const axis = (p.xaxis && p.xaxis._id) || "x";
    const panel = axis === "x" ? 0 : parseInt(axis.slice(1), 10) - 1;
    const cd = p.customdata;
    const row = Array.isArray(cd) ? cd[cd.length - 1] : null;
    const text = row === null && p.text !== undefined ? String(p.text) : null;
    const box = document.querySelector("#map_pick textarea, #map_pick input");
    if (!box) return;
    box.value = JSON.stringify({panel: panel, row: row, upload: text, t: Date.now()});
    box.dispatchEvent(new Event("input", {bubbles: true}));
  };
  const bind = () => {
    document.querySelectorAll("#map_plot .js-plotly-plot").forEach((gd) => {
      if (typeof gd.on !== "function") return;
      const h = gd.__mapClick ||
        (gd.__mapClick = (ev) => ev && ev.points && ev.points[0] && pick(ev.points[0]));
      const has = gd._ev && gd._ev.listeners && gd._ev.listeners("plotly_click").includes(h);
      if (!has) gd.on("plotly_click", h);
    });
  };
  new MutationObserver(bind).observe(document.body, {childList: true, subtree: true});
  bind();
}
"""


def _r(x: float) -> float | str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 3)


def score_rows(scores: dict[str, dict[str, ProbeScores]]) -> list[list[Any]]:
    """One row per (codec, attribute) of probe scores ({codec label: {attribute: scores}})."""
    rows = []
    for label, by_attr in scores.items():
        for attr, s in by_attr.items():
            rows.append(
                [
                    label,
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
        desc = f"{method.upper()} map"
        if method == "umap" and studio.warmup_status.state != "done":
            desc += " (the first UMAP fit compiles numba, about 15 s)"
        progress(0.05, desc=desc)
    lm = studio.latent_map(method, color_by, w, uploads)
    rows = score_rows(studio.probe_scores(w))
    labels = [s.label for s in studio.sounds]
    caption = (
        f"{len(studio.items)} dataset clips, window w={w}. Click a point to hear it. Scores: "
        "grouped 5-fold probes on pooled latents (linear SVM, RBF SVM), GMM clustering "
        "agreement and silhouette."
    )
    if uploads:
        ups = ", ".join(
            f"{c.label}: ({p[0, 0]:.2f}, {p[0, 1]:.2f})" for c, p in zip(studio.codecs, lm.uploads)
        )
        caption += f"  \nUpload '{uploads[0][0]}' (the red star) placed at {ups}."
    fig = lm.figure
    fig.update_traces(selector={"name": "uploads"}, marker=UPLOAD_MARKER,
                      textfont={"color": "#e11d48", "size": 14})  # fmt: skip
    fig.update_layout(clickmode="event")
    return fig, rows, gr.update(choices=labels), caption


def play_sound(studio: Studio, label: Any) -> tuple[str, str]:
    """The chosen map sound's file and a description."""
    sound = studio.sound(str(label or ""))
    if sound is None:
        raise UserInputError(f"unknown sound {label!r}; pick one from the list")
    it = sound.item
    desc = f"**{sound.label}**: {it.instrument}" + (f", {it.pitch}" if it.pitch else "")
    desc += f", {it.dynamics or '-'} ({it.klass}), file {it.path.name}"
    return str(sound.path), desc


def pick_point(studio: Studio, point: Any, upload: Any) -> tuple[str, str]:
    """A clicked map point (JSON from `CLICK_JS`: panel, dataset row or upload label): its
    audio file and a caption naming the sound and the codec's panel."""
    try:
        p = json.loads(point) if isinstance(point, str) else dict(point or {})
        panel = int(p.get("panel", 0))
        row = p.get("row")
    except (TypeError, ValueError, AttributeError):
        raise UserInputError(f"not a map point: {point!r}") from None
    if not 0 <= panel < len(studio.codecs):
        raise UserInputError(f"no map panel {panel}")
    where = f" (in {studio.codecs[panel].label}'s map)"
    if row is None:
        path = audio_path(upload)
        if path is None:
            raise UserInputError("that upload is no longer there; upload it again")
        clip = load_clip(upload, studio.config.max_seconds)
        return path, f"**upload {clip.name}**{where}, {clip.seconds:.2f} s"
    try:
        sound = studio.sounds[int(row)]
    except (TypeError, ValueError, IndexError):
        raise UserInputError(f"no dataset point {row!r}") from None
    path, desc = play_sound(studio, sound.label)
    return path, desc + where


def build(studio: Studio, tab: gr.Tab | None = None) -> None:
    """Lay out the tab and wire its events. The first visit of `tab` shows the default map
    (the warm-up's, or computed then with a progress bar)."""
    no_latents_note(studio, "the map and its scores", "map_no_latents")
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
    caption = gr.Markdown("Open this tab or press *Draw map*; then click a point to hear it.")
    plot = gr.Plot(label="Latent map (click a point to hear it)", elem_id="map_plot")
    pick = gr.Textbox(visible="hidden", elem_id="map_pick", label="picked point")
    with gr.Row():
        player = gr.Audio(label="Sound", type="filepath", interactive=False, elem_id="map_player")
        sound_info = gr.Markdown(elem_id="map_sound_info")
    scores = gr.Dataframe(
        headers=SCORE_HEADERS,
        interactive=False,
        label="Semantic-structure scores",
        elem_id="map_scores",
    )
    sound = gr.Dropdown(
        [s.label for s in studio.sounds],
        value=None,
        label="Or pick a sound of the map",
        elem_id="map_sound",
    )
    shown = gr.State(False)

    def on_map(method, color_by, window, upload, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        return *latent_map(studio, method, color_by, window, upload, progress), True

    def on_first_visit(shown, window, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        if shown:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), True
        return *latent_map(studio, "umap", "instrument", window, None, progress), True

    def on_play(sound):
        return play_sound(studio, sound)

    def on_pick(point, upload):
        return pick_point(studio, point, upload)

    gr.on(
        [draw.click, method.input, color.input],
        studio_handler(studio, on_map),
        [method, color, window, upload],
        [plot, scores, sound, caption, shown],
        api_name="latent_map",
    )
    if tab is not None:
        tab.select(
            studio_handler(studio, on_first_visit),
            [shown, window],
            [plot, scores, sound, caption, shown],
            api_name="show_map",
        )
    sound.input(
        studio_handler(studio, on_play, heavy=False),
        [sound],
        [player, sound_info],
        api_name="play_sound",
    )
    pick.change(
        studio_handler(studio, on_pick, heavy=False),
        [pick, upload],
        [player, sound_info],
        api_name="pick_point",
    )
