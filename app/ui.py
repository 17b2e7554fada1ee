"""The Gradio Blocks page: banner, model summary and the four tabs.

`build_demo(studio)` only lays out components and wires events; every handler lives in its
tab module (`app/tabs/*.py`) and reaches models through `analysis` / the Codec interface.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from app.config import GRADIO_CACHE_SECONDS
from app.state import Studio, weights_source
from app.tabs import latent_map, reconstruct, timbre, traversal

log = logging.getLogger(__name__)

TITLE = "ALMTokenizer Studio"
CSS = """
#banner { border: 2px solid #d97706; border-radius: 8px; padding: 4px 12px; background: #fffbeb; }
"""


def summary_markdown(studio: Studio) -> str:
    """One paragraph: what is loaded."""
    alm, enc = studio.alm, studio.encodec
    w = studio.config.window
    return (
        f"**ALMTokenizer** ({weights_source(alm, studio.config.alm_checkpoint)}): "
        f"{alm.frame_rate(w):.2f} tokens/s at w={w}, {alm.num_codebooks} x {alm.codebook_size} "
        f"codebooks, {alm.bitrate(w) / 1000:.3f} kbps. "
        f"**EnCodec** ({weights_source(enc)}): {enc.frame_rate(None):.0f} tokens/s. "
        f"**Dataset**: {studio.config.dataset_root} ({len(studio.items)} clips, "
        f"{len(studio.instruments)} instruments)."
    )


def banner_markdown(studio: Studio) -> str:
    return "\n".join(f"**Warning:** {n}  " for n in studio.notices)


def initial_map(studio: Studio) -> tuple[Any, ...] | None:
    """The warm-up's map outputs (so the Latent map tab shows a map at once), or None."""
    try:
        return latent_map.latent_map(studio, "umap", "instrument", studio.config.window, None)
    except Exception:  # the tab still works; the user just has to click "Draw map"
        log.exception("could not draw the initial latent map")
        return None


def warm_tabs(studio: Studio) -> None:
    """Run the Reconstruct tab once on the first bundled example (plots, metrics and that
    example's results are then warm)."""
    examples = studio.examples()
    if not examples:
        return
    try:
        first = examples[0]
        reconstruct.reconstruct(
            studio, str(first.path), studio.config.window, studio.bandwidths[0], name=first.label
        )
    except Exception:
        log.exception("warm-up of the Reconstruct tab failed")


def build_demo(studio: Studio, initial: tuple[Any, ...] | None = None) -> gr.Blocks:
    """The whole page. `initial`: outputs of `initial_map` (None draws nothing up front)."""
    cache = (GRADIO_CACHE_SECONDS, GRADIO_CACHE_SECONDS)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=cache) as demo:
        gr.Markdown(f"# {TITLE}\nALMTokenizer (arXiv 2504.10344) next to EnCodec.")
        gr.Markdown(banner_markdown(studio), visible=bool(studio.notices), elem_id="banner")
        gr.Markdown(summary_markdown(studio), elem_id="summary")
        with gr.Tabs():
            with gr.Tab("Reconstruct", id="reconstruct", elem_id="tab_reconstruct"):
                reconstruct.build(studio)
            with gr.Tab("Latent map", id="latent_map", elem_id="tab_latent_map"):
                latent_map.build(studio, initial)
            with gr.Tab("Traversal", id="traversal", elem_id="tab_traversal"):
                traversal.build(studio)
            with gr.Tab("Timbre transfer", id="timbre", elem_id="tab_timbre"):
                timbre.build(studio)
    return demo
